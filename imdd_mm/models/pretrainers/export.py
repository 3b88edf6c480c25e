# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Export a Stage-1 checkpoint to a diffusers folder.

``OUT`` layout (loadable by diffusers and by imdd-mm)::

    OUT/unet/                 UNet2DConditionModel.save_pretrained (EMA)
    OUT/vae/                  AutoencoderKL.save_pretrained (the frozen VAE)
    OUT/scheduler/            DDPMScheduler with the training schedule
    OUT/captioner_mlp.pth     state dict of the implicit captioner's MLP
    OUT/imdd_stage1.json      text encoder / captioner cfgs, scaling factor,
                              null condition, source checkpoint, ema flag

Stage 2 then loads it with ``unet=dict(pretrained=OUT)`` /
``vae=dict(pretrained=OUT)`` of the backbone (diffusers' ``subfolder``
rule), or with ``stage1_checkpoint=OUT`` (U-Net + captioner MLP via
:func:`load_stage1_weights`). The folder is written next to ``OUT`` and
renamed into place at the end, so a failed export leaves nothing behind.
"""
import json
import os
import os.path as osp
import shutil
from typing import Union

import torch

from imdd_mm.utils.checkpoint import safe_torch_load
from imdd_mm.utils.provenance import FROZEN_SOURCES_KEY
from .stage1_checkpoint import (CAPTIONER_MLP_FILE, STAGE1_META_FILE,
                                stage1_state_dict)


def _jsonable(obj):
    """Config values -> JSON (tuples to lists, other objects to str)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def stage1_config_from_checkpoint(checkpoint: Union[str, dict]):
    """The training config stored by mmengine's Runner in ``meta['cfg']``."""
    from mmengine.config import Config
    ckpt = safe_torch_load(checkpoint, map_location='cpu') if isinstance(
        checkpoint, str) else checkpoint
    text = (ckpt.get('meta') or {}).get('cfg') if isinstance(ckpt,
                                                             dict) else None
    if not text:
        raise KeyError('checkpoint has no meta["cfg"] (not written by the '
                       'mmengine Runner); pass the config explicitly')
    return Config.fromstring(text, file_format='.py')


def export_stage1_to_diffusers(checkpoint: str,
                               out_dir: str,
                               cfg=None,
                               use_ema: bool = True,
                               with_vae: bool = True,
                               overwrite: bool = False) -> str:
    """Write ``out_dir`` (see module docstring) from a Stage-1 checkpoint.

    Args:
        checkpoint (str): mmengine checkpoint of IMDDDiffusionPretrainer.
        out_dir (str): Destination folder (must not exist unless
            ``overwrite``).
        cfg (str | Config, optional): The Stage-1 config; defaults to the
            one stored in the checkpoint's meta.
        use_ema (bool): Export the EMA weights. Defaults to True.
        with_vae (bool): Also save the frozen VAE. Defaults to True.
        overwrite (bool): Replace an existing ``out_dir``.

    Returns:
        str: ``out_dir``.
    """
    from diffusers import DDPMScheduler
    from mmengine.config import Config

    from ..backbones.diffusion_builders import build_unet, build_vae
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'Stage-1 checkpoint {checkpoint} does not '
                                'exist')
    if osp.exists(out_dir) and not overwrite:
        raise FileExistsError(f'{out_dir} exists; pass overwrite=True '
                              '(--overwrite) to replace it')
    ckpt = safe_torch_load(checkpoint, map_location='cpu')
    if cfg is None:
        cfg = stage1_config_from_checkpoint(ckpt)
    elif isinstance(cfg, str):
        cfg = Config.fromfile(cfg)
    mcfg = cfg.model
    if mcfg.get('type') != 'IMDDDiffusionPretrainer':
        raise ValueError(f'{checkpoint}: config model type is '
                         f'{mcfg.get("type")!r}, not IMDDDiffusionPretrainer')
    state = stage1_state_dict(ckpt, use_ema=use_ema, source=checkpoint)

    unet_cfg = dict(mcfg.unet)
    unet_cfg.pop('gradient_checkpointing', None)
    unet_cfg['init'] = 'default'
    unet = build_unet(unet_cfg)
    unet_state = {k[5:]: v for k, v in state.items() if k.startswith('unet.')}
    missing, unexpected = unet.load_state_dict(unet_state, strict=False)
    if missing or unexpected or not unet_state:
        raise RuntimeError(f'{checkpoint}: U-Net weights do not fit the '
                           f'config (missing {missing[:5]}, unexpected '
                           f'{unexpected[:5]})')
    mlp_state = {
        k[len('captioner.mlp.'):]: v
        for k, v in state.items() if k.startswith('captioner.mlp.')
    }

    out_dir = osp.abspath(out_dir)
    parent = osp.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = osp.join(parent, f'.{osp.basename(out_dir)}.tmp{os.getpid()}')
    if osp.exists(tmp):
        shutil.rmtree(tmp)
    try:
        unet.save_pretrained(osp.join(tmp, 'unet'))
        scaling = mcfg.get('scaling_factor', None)
        if with_vae:
            vae_cfg = dict(mcfg.vae)
            vae_cfg.pop('drop_decoder', None)
            vae = build_vae(vae_cfg)
            vae.save_pretrained(osp.join(tmp, 'vae'))
            if scaling is None:
                scaling = vae.config.scaling_factor
        DDPMScheduler(
            num_train_timesteps=mcfg.get('num_train_timesteps', 1000),
            beta_start=mcfg.get('beta_start', 1e-4),
            beta_end=mcfg.get('beta_end', 0.02),
            beta_schedule=mcfg.get('beta_schedule', 'linear'),
            clip_sample=False,
            prediction_type='epsilon').save_pretrained(
                osp.join(tmp, 'scheduler'))
        if mlp_state:
            torch.save(mlp_state, osp.join(tmp, CAPTIONER_MLP_FILE))
        meta = dict(
            format='imdd-mm stage1 export v1',
            source_checkpoint=osp.abspath(checkpoint),
            ema=bool(use_ema and 'ema_state_dict' in ckpt),
            scaling_factor=scaling,
            null_condition=mcfg.get('null_condition', 'empty'),
            text_encoder=_jsonable(mcfg.text_encoder.to_dict()
                                   if hasattr(mcfg.text_encoder, 'to_dict')
                                   else mcfg.text_encoder),
            captioner=_jsonable(mcfg.captioner.to_dict() if hasattr(
                mcfg.captioner, 'to_dict') else mcfg.captioner),
            has_captioner_mlp=bool(mlp_state),
            has_vae=bool(with_vae))
        # frozen-network provenance of Stage 1, checked by Stage 2
        meta[FROZEN_SOURCES_KEY] = (ckpt.get('meta') or {}).get(
            FROZEN_SOURCES_KEY)
        with open(osp.join(tmp, STAGE1_META_FILE), 'w',
                  encoding='utf-8') as f:
            json.dump(meta, f, indent=2)
            f.write('\n')
        if osp.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp)
    return out_dir
