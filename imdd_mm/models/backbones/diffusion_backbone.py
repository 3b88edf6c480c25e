# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Diffusion-feature backbone of IMDD (paper §4.3, §4.5, §10.3)."""
import contextlib
import math
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor

from ._registry import register_model
from .diffusion_builders import (SD15_UNET_CONFIG, SD15_VAE_CONFIG,
                                 build_unet, build_vae, to_dtype)
from .frozen import FrozenModulesMixin

NOISE_MODES = ('latent', 'pixel')
#: fixed-noise tensors kept (one per input shape/device/dtype, LRU)
NOISE_CACHE_SIZE = 8


def ddpm_alphas_cumprod(num_train_timesteps: int = 1000,
                        beta_start: float = 1e-4,
                        beta_end: float = 0.02,
                        beta_schedule: str = 'linear') -> Tensor:
    """ᾱ of a DDPM schedule, float64, indexed by diffusers' timestep 0..T-1.

    ``'linear'`` is the paper's β_t = β_1 + (t-1)/(T-1)(β_T-β_1), t=1..T
    (entry ``k`` holds ᾱ of paper step ``k+1``, the diffusers convention that
    ``DDPMScheduler.add_noise`` and the Stage-1 pretrainer use);
    ``'scaled_linear'`` is SD's original schedule.
    """
    if beta_schedule == 'linear':
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps,
                               dtype=torch.float64)
    elif beta_schedule == 'scaled_linear':
        betas = torch.linspace(beta_start**0.5, beta_end**0.5,
                               num_train_timesteps, dtype=torch.float64)**2
    else:
        raise ValueError(f"beta_schedule must be 'linear' or "
                         f"'scaled_linear', got {beta_schedule!r}")
    return torch.cumprod(1.0 - betas, dim=0)


@register_model
class IMDDDiffusionBackbone(FrozenModulesMixin, BaseModule):
    """Multi-scale features of a (frozen) text-conditioned diffusion U-Net.

    An image in [-1, 1] is noised to timestep ``t`` with a *fixed* noise
    tensor and encoded by the VAE (posterior mean × scaling factor; paper
    eq. 9, ``noise_mode='pixel'``; ``'latent'`` noises the latent instead),
    and passed
    with the conditioning ``cond`` through the U-Net; intermediate maps are
    returned. Because the noise is fixed (drawn once per shape from a
    ``torch.Generator`` seeded with ``noise_seed`` and shared by all images
    of a batch) and the diffusion part is frozen, the features are a pure,
    deterministic function of (image, cond).

    Output names (``f`` = VAE down-sampling factor, 8 for SD; ``n`` = number
    of U-Net levels, 4 for SD; SD-1.5 channels in brackets):

    * ``'s8'`` (320), ``'s16'`` (640), ``'s32'`` (1280): encoder side, the
      output of U-Net down block ``i`` before its down-sampler, image stride
      ``f·2**i`` (latent strides 1, 2, 4) — the maps of §4.5.
    * ``'s64'`` (1280): the last level, the U-Net mid block's output
      (latent stride 8); ``'down_s64'`` is the last down block's output
      instead; ``'down_s8'``... alias the encoder taps.
    * ``'up_s64'`` (1280), ``'up_s32'`` (1280), ``'up_s16'`` (640),
      ``'up_s8'`` (320): decoder side, the output of up block ``j`` before its
      up-sampler (needs the up path, which is skipped otherwise).
    * ``'vae_s2'`` (256), ``'vae_s4'`` (512): VAE-encoder maps before the
      down-sampler of VAE block ``k`` (image stride ``2**k``), for small
      defects.

    ``out_channels`` and ``out_strides`` (dicts keyed by the requested names)
    give channels and image strides; outputs are returned in
    ``out_features`` order as a dict of ``(B, C, H/stride, W/stride)``
    tensors (ceil-rounded when H, W are not multiples of the stride).

    Frozen parts (``frozen=True``, default; VAE always unless
    ``freeze_vae=False``) have ``requires_grad=False``, run under
    ``torch.no_grad()``, stay in ``eval()`` through ``train()``, are held
    outside the module tree (not in ``parameters()``, ``state_dict()``, the
    optimizer or DDP) and follow ``.to()``/``.cuda()``. The VAE decoder is
    dropped at construction. ``frozen=False`` registers the U-Net as a normal
    trainable child (ablations / fine-tuning).

    Args:
        unet (dict): :func:`build_unet` cfg (``config=`` random init or
            ``pretrained=`` diffusers folder / hub id). Default: SD-1.5
            shape, random init (seed 0).
        vae (dict): :func:`build_vae` cfg. Default: SD VAE shape.
        out_features (Sequence[str]): names to return.
            Default ``('s8', 's16', 's32', 's64')``.
        timestep (int): diffusion step of the noise, diffusers convention
            (0..T-1). Default 50 (paper §4.5).
        noise_mode (str): ``'pixel'`` (paper eq. 9, default:
            I_t = √ᾱ I + √(1-ᾱ) ε, z_t = VAE(I_t)) or ``'latent'``
            (z_t = √ᾱ z_0 + √(1-ᾱ) ε, noise added after the VAE).
        noise_seed (int): seed of the fixed noise. Default 0.
        num_train_timesteps, beta_start, beta_end, beta_schedule: the DDPM
            schedule (paper: 1000, 1e-4, 0.02, 'linear').
        frozen (bool): freeze the U-Net. Default True.
        freeze_vae (bool): freeze the VAE. Default True.
        frozen_dtype (str | None): store frozen networks in ``'fp16'`` or
            ``'bf16'`` to save memory; outputs are cast back to the input
            dtype outside autocast. Default None (keep fp32). The VAE stays
            fp32 when ``vae_fp32``.
        vae_fp32 (bool): run the VAE encoder in fp32 with autocast off, as
            the Stage-1 pretrainer does (SD's VAE is unstable in fp16), so
            both stages see the same latents. Default True.
        gradient_checkpointing (bool): diffusers' gradient checkpointing
            (only active when gradients flow through the U-Net).
        cond_grad (bool): let gradients flow through the frozen U-Net into
            ``cond`` (ODISE-style training of the implicit captioner in
            Stage 2; costs activation memory). Default False: the U-Net runs
            under ``no_grad`` and ``cond`` receives no gradient.
        stage1_checkpoint (str | None): a Stage-1 checkpoint whose (EMA)
            U-Net weights are loaded at construction via
            ``imdd_mm.models.pretrainers.load_stage1_weights``.
        init_cfg (dict | None): mmengine init cfg (the frozen parts are
            never touched by ``init_weights``).

    Example:
        >>> from imdd_mm.models.backbones import (
        ...     IMDDDiffusionBackbone, TINY_UNET_CONFIG, TINY_VAE_CONFIG)
        >>> bb = IMDDDiffusionBackbone(unet=dict(config=TINY_UNET_CONFIG),
        ...                            vae=dict(config=TINY_VAE_CONFIG))
        >>> feats = bb(torch.rand(2, 3, 128, 128) * 2 - 1,
        ...            torch.randn(2, 1, 384))
        >>> {k: tuple(v.shape) for k, v in feats.items()}
        {'s8': (2, 16, 16, 16), 's16': (2, 16, 8, 8), 's32': (2, 32, 4, 4),
         's64': (2, 32, 2, 2)}
        >>> bb.out_strides
        {'s8': 8, 's16': 16, 's32': 32, 's64': 64}
    """

    def __init__(self,
                 unet: ConfigType = dict(config=SD15_UNET_CONFIG),
                 vae: ConfigType = dict(config=SD15_VAE_CONFIG),
                 out_features: Sequence[str] = ('s8', 's16', 's32', 's64'),
                 timestep: int = 50,
                 noise_mode: str = 'pixel',
                 noise_seed: int = 0,
                 num_train_timesteps: int = 1000,
                 beta_start: float = 1e-4,
                 beta_end: float = 0.02,
                 beta_schedule: str = 'linear',
                 frozen: bool = True,
                 freeze_vae: bool = True,
                 frozen_dtype: Optional[str] = None,
                 vae_fp32: bool = True,
                 gradient_checkpointing: bool = False,
                 cond_grad: bool = False,
                 stage1_checkpoint: Optional[str] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if noise_mode not in NOISE_MODES:
            raise ValueError(f'noise_mode must be one of {NOISE_MODES}, '
                             f'got {noise_mode!r}')
        self._init_device_tracker()
        self.noise_mode = noise_mode
        self.noise_seed = int(noise_seed)
        self.frozen = bool(frozen)
        self.freeze_vae = bool(freeze_vae)
        self.cond_grad = bool(cond_grad)
        self.frozen_dtype = to_dtype(frozen_dtype)
        self.vae_fp32 = bool(vae_fp32)
        self.register_buffer(
            'alphas_cumprod',
            ddpm_alphas_cumprod(num_train_timesteps, beta_start, beta_end,
                                beta_schedule).float(),
            persistent=False)
        self.num_train_timesteps = num_train_timesteps
        self.timestep = timestep  # validated by the setter
        self._noise_cache: 'OrderedDict[tuple, Tensor]' = OrderedDict()

        vae_cfg = dict(vae)
        vae_cfg.setdefault('drop_decoder', True)
        vae_net, vae_src = build_vae(vae_cfg, with_source=True)
        unet_net, unet_src = build_unet(dict(unet), with_source=True)
        if stage1_checkpoint is not None:
            from imdd_mm.models.pretrainers import load_stage1_weights
            unet_src = load_stage1_weights(stage1_checkpoint,
                                           unet_net)['frozen_source']
        if gradient_checkpointing:
            unet_net.enable_gradient_checkpointing()
        self._attach('unet', unet_net, self.frozen, unet_src)
        self._attach('vae', vae_net, self.freeze_vae, vae_src)

        vcfg = vae_net.config
        self.latent_channels = vcfg.latent_channels
        self.scaling_factor = float(vcfg.scaling_factor)
        shift = getattr(vcfg, 'shift_factor', None)
        self.shift_factor = float(shift) if shift is not None else 0.0
        self.vae_factor = 2**(len(vcfg.block_out_channels) - 1)
        ucfg = unet_net.config
        if ucfg.in_channels != self.latent_channels:
            raise ValueError(
                f'U-Net in_channels={ucfg.in_channels} != VAE '
                f'latent_channels={self.latent_channels}')
        for key in ('class_embed_type', 'addition_embed_type'):
            if getattr(ucfg, key, None) is not None:
                raise ValueError(f'U-Net configs with {key} are not '
                                 'supported by IMDDDiffusionBackbone')
        self.cross_attention_dim = int(ucfg.cross_attention_dim)

        self._taps = self._available_taps(unet_net, vae_net)
        out_features = list(out_features)
        bad = [n for n in out_features if n not in self._taps]
        if bad or not out_features:
            raise ValueError(f'unknown out_features {bad}; available: '
                             f'{list(self._taps)}')
        if len(set(out_features)) != len(out_features):
            raise ValueError(f'duplicate out_features: {out_features}')
        self.out_features = tuple(out_features)
        self.out_channels = {n: self._taps[n][2] for n in out_features}
        self.out_strides = {n: self._taps[n][3] for n in out_features}

    # ------------------------------------------------------------------
    # construction helpers
    def _attach(self, name: str, module: nn.Module, frozen: bool,
                source: dict) -> None:
        if frozen:
            keep_fp32 = name == 'vae' and self.vae_fp32
            if self.frozen_dtype is not None and not keep_fp32:
                module.to(self.frozen_dtype)
            self.add_frozen_module(name, module)
            self.set_frozen_source(name, source)
        else:
            setattr(self, name, module)

    def _available_taps(self, unet, vae) -> Dict[str, Tuple]:
        """name -> (kind, index, channels, image stride)."""
        f = self.vae_factor
        chans = list(unet.config.block_out_channels)
        n = len(chans)
        taps = {}
        for i in range(n):
            taps[f'down_s{f * 2**i}'] = ('down', i, chans[i], f * 2**i)
        for i in range(n - 1):
            taps[f's{f * 2**i}'] = ('down', i, chans[i], f * 2**i)
        last = f * 2**(n - 1)
        if unet.mid_block is not None:
            taps[f'mid_s{last}'] = ('mid', n - 1, chans[-1], last)
            taps[f's{last}'] = ('mid', n - 1, chans[-1], last)
        else:
            taps[f's{last}'] = ('down', n - 1, chans[-1], last)
        rev = chans[::-1]
        for j in range(len(unet.up_blocks)):
            stride = f * 2**(n - 1 - j)
            taps[f'up_s{stride}'] = ('up', j, rev[j], stride)
        vchans = list(vae.config.block_out_channels)
        for k in range(1, len(vchans)):
            taps[f'vae_s{2**k}'] = ('vae', k, vchans[k], 2**k)
        return taps

    # ------------------------------------------------------------------
    # properties
    @property
    def timestep(self) -> int:
        return self._timestep

    @timestep.setter
    def timestep(self, value: int) -> None:
        value = int(value)
        if not 0 <= value < self.num_train_timesteps:
            raise ValueError(f'timestep must be in [0, '
                             f'{self.num_train_timesteps}), got {value}')
        self._timestep = value

    @property
    def sqrt_alpha_bar(self) -> float:
        return math.sqrt(float(self.alphas_cumprod[self._timestep]))

    @property
    def sqrt_one_minus_alpha_bar(self) -> float:
        return math.sqrt(1.0 - float(self.alphas_cumprod[self._timestep]))

    def fixed_noise(self, shape: Sequence[int], device: torch.device,
                    dtype: torch.dtype) -> Tensor:
        """The fixed ε of shape ``(1, *shape)`` (cached per shape/device,
        the :data:`NOISE_CACHE_SIZE` most recently used).

        Drawn on the CPU from ``torch.Generator().manual_seed(noise_seed)``,
        so it is identical on every device, rank and run.
        """
        key = (tuple(shape), str(device), dtype)
        noise = self._noise_cache.get(key)
        if noise is None:
            gen = torch.Generator().manual_seed(self.noise_seed)
            noise = torch.randn((1, *shape), generator=gen,
                                dtype=torch.float32)
            noise = noise.to(device=device, dtype=dtype)
            self._noise_cache[key] = noise
            while len(self._noise_cache) > NOISE_CACHE_SIZE:
                self._noise_cache.popitem(last=False)
        else:
            self._noise_cache.move_to_end(key)
        return noise

    def set_unet_source(self, source: dict) -> None:
        """Record new weights loaded into the frozen U-Net (Stage 1)."""
        if self.frozen:
            self.set_frozen_source('unet', source)

    def add_noise(self, x: Tensor) -> Tensor:
        """√ᾱ_t·x + √(1-ᾱ_t)·ε_fixed (ε broadcast over the batch)."""
        eps = self.fixed_noise(x.shape[1:], x.device, x.dtype)
        return self.sqrt_alpha_bar * x + self.sqrt_one_minus_alpha_bar * eps

    # ------------------------------------------------------------------
    # forward pieces
    def _module_dtype(self, module: nn.Module) -> torch.dtype:
        for p in module.parameters():
            return p.dtype
        return torch.float32

    def _grad_ctx(self, frozen: bool, enable_if_frozen: bool = False):
        if frozen and not enable_if_frozen:
            return torch.no_grad()
        return contextlib.nullcontext()

    def encode_latents(self, img: Tensor,
                       vae_taps: Sequence[int] = ()) -> Tuple[Tensor, Dict]:
        """VAE posterior mean × scaling factor: (B,3,H,W) -> (B,4,H/f,W/f).

        Args:
            img (Tensor): image in [-1, 1].
            vae_taps (Sequence[int]): VAE encoder block indices whose
                pre-down-sampling maps to return as well.

        Returns:
            tuple[Tensor, dict[int, Tensor]]
        """
        vae = self.vae
        feats: Dict[int, Tensor] = {}
        handles = []
        for k in vae_taps:
            block = vae.encoder.down_blocks[k]
            if block.downsamplers is not None:
                handles.append(block.downsamplers[0].register_forward_pre_hook(
                    lambda m, args, k=k: feats.__setitem__(k, args[0])))
            else:
                handles.append(block.register_forward_hook(
                    lambda m, args, out, k=k: feats.__setitem__(k, out)))
        if self.vae_fp32:
            precision = torch.autocast(device_type=img.device.type,
                                       enabled=False)
        else:
            precision = contextlib.nullcontext()
        try:
            with precision:
                x = img.to(self._module_dtype(vae))
                h = vae.encoder(x)
                if vae.quant_conv is not None:
                    h = vae.quant_conv(h)
        finally:
            for hd in handles:
                hd.remove()
        mean = h[:, :self.latent_channels]
        z0 = (mean - self.shift_factor) * self.scaling_factor
        return z0, feats

    def _prepare_cond(self, cond: Optional[Tensor], batch: int,
                      device, dtype) -> Tensor:
        if cond is None:
            return torch.zeros(batch, 1, self.cross_attention_dim,
                               device=device, dtype=dtype)
        if cond.dim() == 2:
            cond = cond[:, None]
        if cond.dim() != 3 or cond.shape[-1] != self.cross_attention_dim:
            raise ValueError(
                f'cond must be (B, L, {self.cross_attention_dim}) (the '
                f"U-Net's cross_attention_dim), got {tuple(cond.shape)}")
        if cond.shape[0] == 1 and batch > 1:
            cond = cond.expand(batch, -1, -1)
        elif cond.shape[0] != batch:
            raise ValueError(f'cond batch {cond.shape[0]} != image batch '
                             f'{batch}')
        return cond.to(device=device, dtype=dtype)

    def _run_unet(self, z: Tensor, cond: Tensor,
                  needed: List[Tuple]) -> Dict[Tuple[str, int], Tensor]:
        """Run only the U-Net parts that the requested taps need."""
        unet = self.unet
        n = len(unet.down_blocks)
        kinds = {k for k, _ in needed}
        last_down = max([i for k, i in needed if k == 'down'] + [-1])
        run_mid = 'mid' in kinds or 'up' in kinds
        last_up = max([j for k, j in needed if k == 'up'] + [-1])
        if run_mid or 'up' in kinds:
            last_down = n - 1
        out: Dict[Tuple[str, int], Tensor] = {}

        t = torch.full((z.shape[0], ), self._timestep, device=z.device,
                       dtype=torch.long)
        emb = unet.time_embedding(unet.get_time_embed(sample=z, timestep=t),
                                  None)
        if unet.time_embed_act is not None:
            emb = unet.time_embed_act(emb)
        ehs = unet.process_encoder_hidden_states(
            encoder_hidden_states=cond, added_cond_kwargs={})
        h = unet.conv_in(z)
        res_samples: Tuple[Tensor, ...] = (h, )
        for i, block in enumerate(unet.down_blocks[:last_down + 1]):
            if getattr(block, 'has_cross_attention', False):
                h, res = block(hidden_states=h, temb=emb,
                               encoder_hidden_states=ehs)
            else:
                h, res = block(hidden_states=h, temb=emb)
            res_samples += res
            pre = res[-2] if block.downsamplers is not None else res[-1]
            out[('down', i)] = pre
        if run_mid and unet.mid_block is not None:
            if getattr(unet.mid_block, 'has_cross_attention', False):
                h = unet.mid_block(h, emb, encoder_hidden_states=ehs)
            else:
                h = unet.mid_block(h, emb)
            out[('mid', n - 1)] = h
        for j, block in enumerate(unet.up_blocks[:last_up + 1]):
            k = len(block.resnets)
            res, res_samples = res_samples[-k:], res_samples[:-k]
            upsample_size = None
            if block.upsamplers is not None and res_samples:
                upsample_size = res_samples[-1].shape[2:]
            handle = None
            if block.upsamplers is not None:
                handle = block.upsamplers[0].register_forward_pre_hook(
                    lambda m, args, j=j: out.__setitem__(('up', j), args[0]))
            try:
                if getattr(block, 'has_cross_attention', False):
                    h = block(hidden_states=h, temb=emb,
                              res_hidden_states_tuple=res,
                              encoder_hidden_states=ehs,
                              upsample_size=upsample_size)
                else:
                    h = block(hidden_states=h, temb=emb,
                              res_hidden_states_tuple=res,
                              upsample_size=upsample_size)
            finally:
                if handle is not None:
                    handle.remove()
            if block.upsamplers is None:
                out[('up', j)] = h
        return out

    def forward(self, img: Tensor,
                cond: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Extract the diffusion features.

        Args:
            img (Tensor): (B, 3, H, W) image in [-1, 1].
            cond (Tensor | None): (B, L, C) or (B, C) conditioning with
                ``C = cross_attention_dim`` (implicit-captioner output or a
                caption's text embedding); ``None`` -> zeros (B, 1, C).

        Returns:
            dict[str, Tensor]: ``out_features`` -> (B, C_k, H/s_k, W/s_k).
        """
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f'img must be (B, 3, H, W), got '
                             f'{tuple(img.shape)}')
        in_dtype = img.dtype
        taps = [self._taps[n] for n in self.out_features]
        vae_taps = sorted({i for kind, i, _, _ in taps if kind == 'vae'})
        unet_needed = sorted({(kind, i) for kind, i, _, _ in taps
                              if kind != 'vae'})

        with self._grad_ctx(self.freeze_vae):
            x = img
            if self.noise_mode == 'pixel':
                x = self.add_noise(x.float()).to(in_dtype)
            z, vae_feats = self.encode_latents(x, vae_taps)
            if self.noise_mode == 'latent':
                z = self.add_noise(z)

        unet_feats: Dict[Tuple[str, int], Tensor] = {}
        if unet_needed:
            udtype = self._module_dtype(self.unet)
            cond = self._prepare_cond(cond, img.shape[0], z.device, udtype)
            flow = (self.cond_grad and cond.requires_grad
                    and torch.is_grad_enabled())
            with self._grad_ctx(self.frozen, enable_if_frozen=flow):
                unet_feats = self._run_unet(z.to(udtype), cond, unet_needed)

        outs: Dict[str, Tensor] = {}
        cast = not torch.is_autocast_enabled(img.device.type)
        for name, (kind, i, _, _) in zip(self.out_features, taps):
            feat = vae_feats[i] if kind == 'vae' else unet_feats[(kind, i)]
            outs[name] = feat.to(in_dtype) if cast else feat
        return outs
