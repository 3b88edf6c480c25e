# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Builders for the diffusers U-Net and VAE used by both training stages.

``build_unet(cfg)`` / ``build_vae(cfg)`` take one dict with **either**

* ``config=dict(...)``: a diffusers config; the network is randomly
  initialised (``seed`` fixes the weights, default 0, so every rank and every
  rerun builds the same network; ``init='he_xavier'`` re-initialises conv
  layers with He-normal and linear layers with Xavier-uniform, zero biases;
  ``init='default'`` keeps diffusers' initialisation), **or**
* ``pretrained='<diffusers folder | hub id>'`` with optional ``subfolder``
  (default ``'unet'`` / ``'vae'`` when the folder has one or for hub ids) and
  any further ``from_pretrained`` kwargs in ``pretrained_kwargs`` (e.g.
  ``dict(variant='fp16')``). Hub ids are read from the local Hugging Face
  cache only (``local_files_only=True`` unless ``pretrained_kwargs`` says
  otherwise): nothing is downloaded at build time. Missing weights raise
  :class:`~imdd_mm.utils.provenance.FrozenWeightsUnavailable` naming what
  was looked for, or, inside
  :func:`~imdd_mm.utils.provenance.random_frozen_fallback` (a model built
  with ``allow_random_frozen=True``), fall back to a random network of
  ``config`` (when given beside ``pretrained``) or the SD-1.5 shape.

``build_unet(cfg, with_source=True)`` / ``build_vae`` also return the
source record of the weights (:mod:`imdd_mm.utils.provenance`).

Optional keys: ``torch_dtype`` (``'fp32'|'fp16'|'bf16'`` or a dtype),
``gradient_checkpointing`` (bool, U-Net only), ``drop_decoder`` (VAE only,
default False: frees the decoder when only the encoder is used).

The SD-1.5 shapes are the paper's (§4.3, §10.3): U-Net with block channels
320/640/1280/1280, 2 layers per block, cross-attention dim 768, 8 heads,
859,520,964 parameters; VAE with 128/256/512/512 channels, 4 latent channels,
scaling factor 0.18215 (8-fold compression).

Example:
    >>> from imdd_mm.models.backbones import build_unet, TINY_UNET_CONFIG
    >>> unet = build_unet(dict(config=TINY_UNET_CONFIG))
    >>> with torch.device('meta'):
    ...     big = build_unet(dict(config=SD15_UNET_CONFIG))
    >>> sum(p.numel() for p in big.parameters())
    859520964
"""
import copy
import logging
import os
import os.path as osp
from typing import Any, Dict, Optional, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log

from imdd_mm.utils.provenance import (FrozenWeightsUnavailable,
                                      config_sha256, random_fallback_enabled,
                                      random_source, unavailable,
                                      weights_file_sha256)
from .frozen import seeded_init

# Stable Diffusion v1.5 U-Net (runwayml/stable-diffusion-v1-5/unet/config.json)
SD15_UNET_CONFIG: Dict[str, Any] = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    center_input_sample=False,
    flip_sin_to_cos=True,
    freq_shift=0,
    down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D',
                      'CrossAttnDownBlock2D', 'DownBlock2D'),
    up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D',
                    'CrossAttnUpBlock2D'),
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    downsample_padding=1,
    mid_block_scale_factor=1,
    act_fn='silu',
    norm_num_groups=32,
    norm_eps=1e-5,
    cross_attention_dim=768,
    attention_head_dim=8,
)

# Stable Diffusion v1.5 VAE (runwayml/stable-diffusion-v1-5/vae/config.json)
SD15_VAE_CONFIG: Dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=('DownEncoderBlock2D', ) * 4,
    up_block_types=('UpDecoderBlock2D', ) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    act_fn='silu',
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)


def tiny_unet_config(cross_attention_dim: int = 384,
                     block_out_channels=(16, 16, 32, 32),
                     norm_num_groups: int = 8,
                     attention_head_dim: int = 2) -> Dict[str, Any]:
    """A tiny U-Net of the SD-1.5 layout (4 levels, 3 cross-attn blocks).

    ``cross_attention_dim`` must match the conditioning (MiniLM: 384).
    """
    n = len(block_out_channels)
    return dict(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        flip_sin_to_cos=True,
        freq_shift=0,
        down_block_types=('CrossAttnDownBlock2D', ) * (n - 1) +
        ('DownBlock2D', ),
        up_block_types=('UpBlock2D', ) + ('CrossAttnUpBlock2D', ) * (n - 1),
        block_out_channels=tuple(block_out_channels),
        layers_per_block=1,
        act_fn='silu',
        norm_num_groups=norm_num_groups,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=attention_head_dim,
    )


def tiny_vae_config(block_out_channels=(8, 16, 16, 16),
                    norm_num_groups: int = 8) -> Dict[str, Any]:
    """A tiny VAE with the SD layout (4 levels -> 8-fold compression)."""
    n = len(block_out_channels)
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=('DownEncoderBlock2D', ) * n,
        up_block_types=('UpDecoderBlock2D', ) * n,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=1,
        act_fn='silu',
        latent_channels=4,
        norm_num_groups=norm_num_groups,
        sample_size=64,
        scaling_factor=0.18215,
    )


#: tiny U-Net (cross-attention 384 = MiniLM text dim), for CPU tests/configs
TINY_UNET_CONFIG: Dict[str, Any] = tiny_unet_config()
#: tiny VAE (8-fold compression like SD's), for CPU tests/configs
TINY_VAE_CONFIG: Dict[str, Any] = tiny_vae_config()

_DTYPES = {
    'fp32': torch.float32, 'float32': torch.float32,
    'fp16': torch.float16, 'float16': torch.float16, 'half': torch.float16,
    'bf16': torch.bfloat16, 'bfloat16': torch.bfloat16,
}


def to_dtype(dtype: Union[None, str, torch.dtype]) -> Optional[torch.dtype]:
    """``'fp16'`` / ``'bf16'`` / ``'fp32'`` / dtype / None -> dtype or None."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f'unknown dtype {dtype!r}; use one of '
                         f'{sorted(_DTYPES)}')
    return _DTYPES[dtype]


def he_xavier_init_(module: nn.Module) -> nn.Module:
    """He-normal init for convs, Xavier-uniform for linears, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv1d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode='fan_out',
                                    nonlinearity='relu')
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


_UNET_KEYS = {'config', 'pretrained', 'subfolder', 'pretrained_kwargs',
              'seed', 'init', 'torch_dtype', 'gradient_checkpointing'}
_VAE_KEYS = {'config', 'pretrained', 'subfolder', 'pretrained_kwargs',
             'seed', 'init', 'torch_dtype', 'drop_decoder'}


def _check_cfg(cfg: Optional[dict], allowed: set, what: str) -> dict:
    if cfg is None:
        raise ValueError(f'{what}: a cfg dict is required')
    if not isinstance(cfg, dict):
        raise TypeError(f'{what}: cfg must be a dict, got {type(cfg)}')
    cfg = dict(cfg)
    unknown = set(cfg) - allowed
    if unknown:
        raise KeyError(f'{what}: unknown keys {sorted(unknown)}; '
                       f'allowed: {sorted(allowed)}')
    has_cfg, has_pre = cfg.get('config') is not None, \
        cfg.get('pretrained') is not None
    if not (has_cfg or has_pre):
        raise ValueError(f'{what}: give `config` (random init) or '
                         '`pretrained` (diffusers folder / hub id; a '
                         '`config` beside it is the shape of the random '
                         'fallback)')
    return cfg


def _resolve_subfolder(path: str, subfolder: Optional[str],
                       default: str) -> Optional[str]:
    """Pick the subfolder for a diffusers folder or hub id."""
    if subfolder is not None:
        return subfolder or None
    if osp.isdir(path):
        if osp.isfile(osp.join(path, 'config.json')):
            return None
        if osp.isdir(osp.join(path, default)):
            return default
        raise FileNotFoundError(
            f'{path}: neither a diffusers model folder (config.json) nor a '
            f'pipeline folder with a {default!r} subfolder')
    if osp.isfile(path):
        raise ValueError(
            f'{path}: is a file; give a diffusers folder or hub id, or load '
            'a Stage-1 checkpoint via `stage1_checkpoint=`')
    return default  # hub id of a pipeline repo


_WEIGHT_FILES = ('diffusion_pytorch_model.safetensors',
                 'diffusion_pytorch_model.bin')


def _weights_sha256(folder: str, variant: Optional[str]) -> Optional[str]:
    names = _WEIGHT_FILES
    if variant:
        names = tuple(n.replace('model.', f'model.{variant}.')
                      for n in names) + names
    return weights_file_sha256(folder, names)


def _from_pretrained(cls, cfg: dict, default_sub: str, what: str):
    """(network, source record) of a diffusers folder / cached hub id."""
    path = os.path.expanduser(str(cfg['pretrained']))
    kwargs = dict(cfg.get('pretrained_kwargs') or {})
    sub = _resolve_subfolder(path, cfg.get('subfolder'), default_sub)
    if sub is not None:
        kwargs['subfolder'] = sub
    dtype = to_dtype(cfg.get('torch_dtype'))
    if dtype is not None:
        kwargs['torch_dtype'] = dtype
    if osp.isdir(path):
        model = cls.from_pretrained(path, **kwargs)
        folder = osp.join(path, sub) if sub else path
        return model, dict(
            kind='diffusers_folder', path=osp.abspath(path), subfolder=sub,
            sha256=_weights_sha256(folder, kwargs.get('variant')))
    if path.startswith(('/', '.', '~')) or path.count('/') > 1:
        raise unavailable(what, f'the diffusers folder {path}',
                          'No such folder.')
    kwargs.setdefault('local_files_only', True)
    try:
        model = cls.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:
        from huggingface_hub.constants import HF_HUB_CACHE
        where = f'the hub id {path!r}'
        if sub:
            where += f' (subfolder {sub!r})'
        fetch = f'huggingface-cli download {path}'
        if sub:
            fetch += f' --include "{sub}/*"'
        raise unavailable(
            what, f'{where} in the Hugging Face cache {HF_HUB_CACHE} '
            f'({type(err).__name__})', f'Fetch it once with `{fetch}` or '
            'point `pretrained` at a local diffusers folder.') from err
    sha = None
    from huggingface_hub import try_to_load_from_cache
    variant = kwargs.get('variant')
    for name in _WEIGHT_FILES:
        if variant:
            name = name.replace('model.', f'model.{variant}.')
        found = try_to_load_from_cache(
            path, f'{sub}/{name}' if sub else name,
            cache_dir=kwargs.get('cache_dir'),
            revision=kwargs.get('revision'))
        if isinstance(found, str) and osp.isfile(found):
            sha = weights_file_sha256(osp.dirname(found),
                                      (osp.basename(found), ))
            break
    return model, dict(kind='hub', id=path, subfolder=sub, sha256=sha)


def _random_record(cfg: dict, config: dict, fallback: Optional[dict] = None
                   ) -> dict:
    return random_source(cfg.get('seed', 0), init=cfg.get('init', 'default'),
                         config_sha256=config_sha256(config),
                         fallback_for=fallback)


def _build(cls, cfg: dict, default_sub: str, default_config: dict,
           what: str):
    """(network, source record), with the random fallback."""
    if cfg.get('pretrained') is None:
        return _from_config(cls, cfg), _random_record(cfg, cfg['config'])
    try:
        return _from_pretrained(cls, cfg, default_sub, what)
    except FrozenWeightsUnavailable as err:
        if not random_fallback_enabled():
            raise
        config = cfg.get('config') or default_config
        fb = dict(kind='requested', pretrained=str(cfg['pretrained']),
                  subfolder=cfg.get('subfolder'))
        print_log(f'{str(err).split(" Nothing is downloaded")[0]} -> '
                  'RANDOM weights (allow_random_frozen=True)',
                  logger='current', level=logging.WARNING)
        net = _from_config(cls, dict(cfg, config=config))
        return net, _random_record(cfg, config, fb)


def _from_config(cls, cfg: dict):
    config = copy.deepcopy(dict(cfg['config']))
    for k, v in config.items():  # diffusers accepts lists and tuples
        if isinstance(v, list):
            config[k] = tuple(v)
    with seeded_init(cfg.get('seed', 0)):
        model = cls(**config)
        init = cfg.get('init', 'default')
        if init == 'he_xavier':
            he_xavier_init_(model)
        elif init != 'default':
            raise ValueError(f"init must be 'default' or 'he_xavier', "
                             f'got {init!r}')
    dtype = to_dtype(cfg.get('torch_dtype'))
    if dtype is not None:
        model.to(dtype)
    return model


def build_unet(cfg: dict, with_source: bool = False):
    """Build a ``diffusers.UNet2DConditionModel`` (see module docstring).

    Args:
        cfg (dict): ``config=`` and/or ``pretrained=`` (+ ``subfolder``,
            ``pretrained_kwargs``), ``seed``, ``init``, ``torch_dtype``,
            ``gradient_checkpointing``.
        with_source (bool): also return the weights' source record.

    Returns:
        UNet2DConditionModel | tuple[UNet2DConditionModel, dict]
    """
    from diffusers import UNet2DConditionModel
    cfg = _check_cfg(cfg, _UNET_KEYS, 'build_unet')
    unet, source = _build(UNet2DConditionModel, cfg, 'unet',
                          SD15_UNET_CONFIG, 'U-Net')
    if cfg.get('gradient_checkpointing', False):
        unet.enable_gradient_checkpointing()
    return (unet, source) if with_source else unet


def build_vae(cfg: dict, with_source: bool = False):
    """Build a ``diffusers.AutoencoderKL`` (see module docstring).

    Args:
        cfg (dict): ``config=`` and/or ``pretrained=`` (+ ``subfolder``,
            ``pretrained_kwargs``), ``seed``, ``init``, ``torch_dtype``,
            ``drop_decoder`` (default False).
        with_source (bool): also return the weights' source record.

    Returns:
        AutoencoderKL | tuple[AutoencoderKL, dict]
    """
    from diffusers import AutoencoderKL
    cfg = _check_cfg(cfg, _VAE_KEYS, 'build_vae')
    vae, source = _build(AutoencoderKL, cfg, 'vae', SD15_VAE_CONFIG, 'VAE')
    if cfg.get('drop_decoder', False):
        vae.decoder = None
        vae.post_quant_conv = None
    return (vae, source) if with_source else vae


def count_params(module: nn.Module) -> int:
    """Number of parameters (works on the meta device)."""
    return sum(p.numel() for p in module.parameters())
