# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Stage-1 -> Stage-2 handoff: read the (EMA) U-Net and captioner MLP.

What mmengine writes (verified against ``mmengine.hooks.EMAHook`` 0.10):
``EMAHook.before_save_checkpoint`` stores ``ema_model.state_dict()`` (keys
``module.<name>`` plus ``steps``) as ``checkpoint['ema_state_dict']`` and
then *swaps* the values of matching keys, so that in the saved file

- ``checkpoint['state_dict'][k]`` holds the **EMA** weights (ready for
  deployment), and
- ``checkpoint['ema_state_dict']['module.' + k]`` holds the **online**
  (non-averaged) weights.

Hence ``use_ema=True`` reads ``state_dict`` of a checkpoint that has an
``ema_state_dict`` and ``use_ema=False`` reads ``ema_state_dict['module.*']``.
A checkpoint without ``ema_state_dict`` (EMAHook off) only has online
weights; ``use_ema=True`` then warns and uses them.

The pretrainer's trainable parts sit under ``unet.`` and ``captioner.mlp.``
(frozen VAE/text encoder/CLIP tower are not stored). A diffusers folder
written by ``tools/misc/export_diffusers.py`` (``unet/`` + optional
``captioner_mlp.pth``) is accepted in place of a checkpoint.
"""
import logging
import os
import os.path as osp
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log

from imdd_mm.utils.checkpoint import safe_torch_load
from imdd_mm.utils.provenance import (FROZEN_SOURCES_KEY,
                                      check_frozen_sources,
                                      check_stage1_sources, stage1_sha256)

#: file name of the captioner MLP state dict inside an exported folder
CAPTIONER_MLP_FILE = 'captioner_mlp.pth'
#: file name of the Stage-1 settings (text encoder, schedule) in an export
STAGE1_META_FILE = 'imdd_stage1.json'


def stage1_state_dict(checkpoint: dict,
                      use_ema: bool = True,
                      source: str = '<checkpoint>') -> Dict[str, torch.Tensor]:
    """The pretrainer-level state dict (``unet.*``, ``captioner.mlp.*``, ...)
    of a loaded mmengine checkpoint, EMA or online (see module docstring).
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{source}: expected a checkpoint dict, got '
                        f'{type(checkpoint).__name__}')
    if 'state_dict' not in checkpoint:
        # a bare state dict
        if use_ema:
            print_log(
                f'{source}: a bare state dict without EMA weights; using it',
                logger='current', level=logging.WARNING)
        return dict(checkpoint)
    state = checkpoint['state_dict']
    ema = checkpoint.get('ema_state_dict')
    if ema is None:
        if use_ema:
            print_log(
                f'{source}: no ema_state_dict (EMAHook was off); loading '
                'the online weights', logger='current',
                level=logging.WARNING)
        return dict(state)
    if use_ema:
        return dict(state)  # EMAHook swapped the EMA weights in here
    online = {k[7:]: v for k, v in ema.items() if k.startswith('module.')}
    # keys the EMA model did not average stay as saved
    for k, v in state.items():
        online.setdefault(k, v)
    return online


def _sub_state(state: Dict[str, torch.Tensor], prefix: str
               ) -> Dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(
        prefix)}


def _load_strict(module: nn.Module, state: dict, what: str,
                 source: str) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f'{source}: the {what} weights do not fit the model '
            f'(missing {len(missing)}: {missing[:5]}, unexpected '
            f'{len(unexpected)}: {unexpected[:5]}). Is the Stage-2 U-Net '
            'config the one Stage 1 was trained with?')


def load_stage1_weights(path: str,
                        unet: nn.Module,
                        captioner_mlp: Optional[nn.Module] = None,
                        use_ema: bool = True) -> dict:
    """Load the Stage-1 U-Net (and captioner MLP) weights in place.

    Args:
        path (str): An mmengine checkpoint written while training
            ``IMDDDiffusionPretrainer`` or a folder exported by
            ``tools/misc/export_diffusers.py``.
        unet (nn.Module): The U-Net to fill (same config as in Stage 1).
        captioner_mlp (nn.Module, optional): The captioner's MLP to fill.
        use_ema (bool): Load the EMA weights (default) or the online ones.

    Returns:
        dict: ``source`` ('checkpoint' | 'diffusers'), ``ema`` (bool,
        whether EMA weights were loaded), ``meta`` (checkpoint meta or {}),
        ``frozen_source`` (the provenance record of the loaded weights:
        ``kind='stage1_checkpoint'``, ``path``, ``sha256``, ``ema``) and
        ``stage1_sources`` (the frozen sources Stage 1 recorded, or None).

    Raises:
        FileNotFoundError, RuntimeError, KeyError: naming ``path``.
    """
    path = os.path.expanduser(str(path))
    if osp.isdir(path):
        return _with_provenance(
            _load_from_export(path, unet, captioner_mlp), path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'Stage-1 checkpoint {path} does not exist')
    ckpt = safe_torch_load(path, map_location='cpu')
    state = stage1_state_dict(ckpt, use_ema=use_ema, source=path)
    unet_state = _sub_state(state, 'unet.')
    if not unet_state:
        raise KeyError(f'{path}: no "unet.*" weights; is this a checkpoint '
                       'of IMDDDiffusionPretrainer?')
    _load_strict(unet, unet_state, 'U-Net', path)
    if captioner_mlp is not None:
        mlp_state = _sub_state(state, 'captioner.mlp.')
        if not mlp_state:
            raise KeyError(f'{path}: no "captioner.mlp.*" weights')
        _load_strict(captioner_mlp, mlp_state, 'captioner MLP', path)
    has_ema = isinstance(ckpt, dict) and 'ema_state_dict' in ckpt
    return _with_provenance(dict(
        source='checkpoint',
        ema=bool(use_ema and has_ema),
        meta=(ckpt.get('meta') or {}) if isinstance(ckpt, dict) else {}),
        path)


def _with_provenance(info: dict, path: str) -> dict:
    """Add ``frozen_source`` and ``stage1_sources`` to a load result."""
    info['frozen_source'] = dict(
        kind='stage1_checkpoint', path=osp.abspath(path),
        sha256=stage1_sha256(path), ema=bool(info['ema']))
    info['stage1_sources'] = (info['meta'] or {}).get(FROZEN_SOURCES_KEY)
    return info


def _load_from_export(folder: str, unet: nn.Module,
                      captioner_mlp: Optional[nn.Module]) -> dict:
    """Load from a folder written by ``tools/misc/export_diffusers.py``."""
    from diffusers import UNet2DConditionModel
    unet_dir = osp.join(folder, 'unet')
    if not osp.isdir(unet_dir):
        raise FileNotFoundError(f'{folder}: no unet/ subfolder (expected a '
                                'folder written by export_diffusers.py)')
    exported = UNet2DConditionModel.from_pretrained(unet_dir)
    _load_strict(unet, exported.state_dict(), 'U-Net', unet_dir)
    if captioner_mlp is not None:
        mlp_file = osp.join(folder, CAPTIONER_MLP_FILE)
        if not osp.isfile(mlp_file):
            raise FileNotFoundError(f'{folder}: no {CAPTIONER_MLP_FILE} '
                                    '(export had no captioner)')
        state = torch.load(mlp_file, map_location='cpu', weights_only=True)
        _load_strict(captioner_mlp, state, 'captioner MLP', mlp_file)
    meta = {}
    meta_file = osp.join(folder, STAGE1_META_FILE)
    if osp.isfile(meta_file):
        import json
        with open(meta_file, encoding='utf-8') as f:
            meta = json.load(f)
    return dict(source='diffusers', ema=bool(meta.get('ema', True)),
                meta=meta)


def load_pretrainer_checkpoint(model: nn.Module,
                               path: str,
                               use_ema: bool = True) -> dict:
    """Load a Stage-1 checkpoint into a whole ``IMDDDiffusionPretrainer``
    (EMA weights by default), e.g. for generation.

    Frozen parts (VAE, text encoder, CLIP tower) are not in the checkpoint
    and keep the weights they were built with; every trainable weight must
    be present, and the frozen ones must be those the checkpoint recorded
    (``meta['imdd_frozen_sources']``) unless the model was built with
    ``override_frozen_sources=True``.
    """
    path = os.path.expanduser(str(path))
    if osp.isdir(path):
        return load_stage1_weights(path, model.unet, model.captioner.mlp)
    if not osp.isfile(path):
        raise FileNotFoundError(f'Stage-1 checkpoint {path} does not exist')
    ckpt = safe_torch_load(path, map_location='cpu')
    if hasattr(model, 'frozen_sources'):
        check_frozen_sources(
            model.frozen_sources(),
            (ckpt.get('meta') or {}).get(FROZEN_SOURCES_KEY),
            override=bool(getattr(model, 'override_frozen_sources', False)),
            source=path)
    state = stage1_state_dict(ckpt, use_ema=use_ema, source=path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    missing_trainable = sorted(set(missing) & trainable)
    if missing_trainable or unexpected:
        raise RuntimeError(
            f'{path}: checkpoint does not fit the model (missing trainable '
            f'{missing_trainable[:5]}, unexpected {unexpected[:5]})')
    return dict(
        source='checkpoint',
        ema=bool(use_ema and 'ema_state_dict' in ckpt),
        meta=ckpt.get('meta', {}))


def load_stage1_into_stage2(model: nn.Module, path: str,
                            use_ema: bool = True) -> dict:
    """Load a Stage-1 checkpoint into a Stage-2 model's frozen U-Net and
    captioner MLP (``model.backbone``, ``model.captioner``) and record
    their provenance. Call :func:`check_stage2_against_stage1` once the
    model is complete.

    Returns:
        dict: the result of :func:`load_stage1_weights`.
    """
    captioner = getattr(model, 'captioner', None)
    info = load_stage1_weights(
        path, model.backbone.unet,
        captioner_mlp=captioner.mlp if captioner is not None else None,
        use_ema=use_ema)
    model.backbone.set_unet_source(info['frozen_source'])
    if captioner is not None:
        captioner.set_mlp_source(info['frozen_source'])
    return info


def check_stage2_against_stage1(model: nn.Module, info: Optional[dict],
                                unet_text_encoder: Optional[nn.Module],
                                override: bool = False) -> None:
    """Refuse a Stage-2 build whose VAE, CLIP image tower or U-Net
    conditioning text encoder differ from the ones Stage 1 was trained with
    (``info`` from :func:`load_stage1_into_stage2`; None: nothing loaded).

    Args:
        unet_text_encoder: the text encoder whose embeddings condition the
            U-Net ('caption' / 'null' modes), None when only the implicit
            captioner (or zeros) does.
    """
    if info is None:
        return
    sources = model.frozen_sources()
    current = {}
    if 'backbone.vae' in sources:
        current['vae'] = sources['backbone.vae']
    if 'captioner.visual' in sources:
        current['captioner.visual'] = sources['captioner.visual']
    if unet_text_encoder is not None:
        tower = unet_text_encoder.frozen_sources().get('tower')
        if tower is not None:
            current['text_encoder.tower'] = tower
    check_stage1_sources(info.get('stage1_sources'), current,
                         info['frozen_source']['path'], override)
