# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Implicit captioner (paper §4.4, eq. 6): image -> pseudo text embedding."""
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.utils import OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor

from imdd_mm.utils.provenance import random_source
from ..backbones._registry import register_model
from ..backbones.frozen import (FrozenModulesMixin, freeze_module,
                                seeded_init)
from ..text_encoders.openclip_utils import build_clip_visual


@register_model
class ImplicitCaptioner(FrozenModulesMixin, BaseModule):
    """Frozen open_clip image tower + trainable 2-layer MLP (eq. 6).

    ``t_imp = W2 · GELU(W1 · V(I) + b1) + b2`` maps the 512-d CLIP image
    embedding to the 768-d text-embedding space that conditions the U-Net.

    The input is the detector's [-1, 1] image; it is mapped to [0, 1],
    resized (whole image, bicubic, antialiased — no centre crop, so border
    defects are kept) to the tower's input size and normalised with the
    tower's mean/std. The image tower is frozen, in eval mode, run under
    ``no_grad`` and held outside the module tree (never in ``state_dict()``,
    ``parameters()`` or the optimizer).

    Args:
        model_name (str | dict): open_clip model name or config dict
            (``TINY_CLIP_CONFIG`` for tests). Default ``'ViT-B-16'``.
        pretrained (str | None): ``None`` (random init, seeded), an
            open_clip pretrained tag (from open_clip's cache) or a local
            checkpoint file; OpenAI weights build the ``-quickgelu``
            variant. The source is recorded (:meth:`frozen_sources`).
        in_dim (int): CLIP image-embedding dim (checked against the tower).
            Default 512.
        hidden_dim (int): MLP hidden width. Default 256.
        out_dim (int): text-embedding dim = the U-Net's
            ``cross_attention_dim``. Default 768.
        frozen_mlp (bool): freeze the MLP too (Stage 2 when the MLP comes
            from Stage 1 and the U-Net is run under ``no_grad``, so it would
            get no gradient anyway — keeps DDP free of unused parameters).
            The frozen MLP is then held like the tower: not in
            ``state_dict()``; load it with ``load_stage1_weights``.
        seed (int | None): seed of the random init of the tower and, when
            ``frozen_mlp``, of the MLP (which frozen is never saved in a
            checkpoint, so test runs must rebuild the same one). Default 0.
        init_cfg (dict | None): mmengine init cfg (for the MLP).

    Example:
        >>> from imdd_mm.models.necks import ImplicitCaptioner
        >>> from imdd_mm.models.text_encoders import TINY_CLIP_CONFIG
        >>> cap = ImplicitCaptioner(model_name=TINY_CLIP_CONFIG, out_dim=384)
        >>> cap(torch.rand(2, 3, 64, 64) * 2 - 1).shape
        torch.Size([2, 1, 384])
        >>> sum(p.numel() for p in ImplicitCaptioner(
        ...     model_name=TINY_CLIP_CONFIG).mlp.parameters())
        328704
    """

    def __init__(self,
                 model_name: Union[str, dict] = 'ViT-B-16',
                 pretrained: Optional[str] = None,
                 in_dim: int = 512,
                 hidden_dim: int = 256,
                 out_dim: int = 768,
                 frozen_mlp: bool = False,
                 seed: Optional[int] = 0,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self._init_device_tracker()
        visual, info = build_clip_visual(model_name, pretrained, seed)
        if info['output_dim'] != in_dim:
            raise ValueError(
                f'ImplicitCaptioner: the image tower of {model_name!r} '
                f"outputs {info['output_dim']}-d, but in_dim={in_dim}")
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, \
            out_dim
        self.image_size = tuple(info['image_size'])
        self.register_buffer(
            'clip_mean', torch.tensor(info['mean']).view(1, 3, 1, 1),
            persistent=False)
        self.register_buffer(
            'clip_std', torch.tensor(info['std']).view(1, 3, 1, 1),
            persistent=False)
        self.add_frozen_module('visual', visual)
        self.set_frozen_source('visual', info['source'])
        self.frozen_mlp = bool(frozen_mlp)
        # a frozen MLP is never saved in checkpoints (frozen modules are
        # hidden): until Stage-1 weights replace it, its random init must
        # be the same in every process (training and test), so it is
        # seeded; a trainable MLP follows the run's global seed
        with seeded_init(seed if self.frozen_mlp else None):
            mlp = nn.Sequential(
                nn.Linear(in_dim, hidden_dim), nn.GELU(),
                nn.Linear(hidden_dim, out_dim))
        if self.frozen_mlp:
            self.add_frozen_module('mlp', freeze_module(mlp))
            # until Stage-1 weights are loaded (set_mlp_source)
            self.set_frozen_source('mlp', random_source(
                seed, init='torch_default', model='captioner MLP'))
        else:
            self.mlp = mlp

    def set_mlp_source(self, source: dict) -> None:
        """Record new weights loaded into a frozen MLP (Stage 1)."""
        if self.frozen_mlp:
            self.set_frozen_source('mlp', source)

    def preprocess(self, img: Tensor) -> Tensor:
        """[-1, 1] image (B,3,H,W) -> CLIP input (B,3,S,S)."""
        x = (img.float() + 1.0) * 0.5
        if tuple(x.shape[-2:]) != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode='bicubic',
                              align_corners=False, antialias=True)
        x = x.clamp(0.0, 1.0)
        return (x - self.clip_mean) / self.clip_std

    def encode_image(self, img: Tensor) -> Tensor:
        """Frozen CLIP image embedding V(I): (B, in_dim), no grad."""
        with torch.no_grad():
            x = self.preprocess(img)
            dtype = next(self.visual.parameters()).dtype
            feat = self.visual(x.to(dtype))
            if isinstance(feat, tuple):
                feat = feat[0]
        return feat.float()

    def forward(self, img: Tensor) -> Tensor:
        """Pseudo text embedding.

        Args:
            img (Tensor): (B, 3, H, W) image in [-1, 1].

        Returns:
            Tensor: (B, 1, out_dim) implicit text embedding t_imp.
        """
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f'img must be (B, 3, H, W), got '
                             f'{tuple(img.shape)}')
        feat = self.encode_image(img)
        return self.mlp(feat)[:, None]
