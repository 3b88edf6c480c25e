# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""CSP-Darknet backbone of YOLOv8 (C2f stages + SPPF).

Outputs (``out_indices=(2, 3, 4)``, the default), for an input (B, 3, H, W):

=======  ======  ====================================================
name     stride  channels (n / s / m)
=======  ======  ====================================================
stage 2  8       64 / 128 / 192   (``256 * widen``)
stage 3  16      128 / 256 / 384  (``512 * widen``)
stage 4  32      256 / 512 / 576  (``min(1024, last) * widen``)
=======  ======  ====================================================

``last_stage_out_channels`` caps the widest layer before widening: 1024 for
n/s, 768 for m, 512 for l/x (the official "max_channels" of each scale).
"""
from typing import List, Sequence, Tuple

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from .layers import (C2f, SPPF, YOLOV8_ACT_CFG, YOLOV8_NORM_CFG,
                     scale_channels, scale_depth)


@MODELS.register_module()
class YOLOv8CSPDarknet(BaseModule):
    """YOLOv8 backbone.

    Layout (unscaled channels): stem 3x3/2 conv (64) -> 4 stages, each a
    3x3/2 conv followed by a C2f block with residual bottlenecks:
    (128, n=3), (256, n=6), (512, n=6), (1024, n=3) + SPPF(k=5).

    Args:
        deepen_factor (float): Depth multiplier (n/s 0.33, m 0.67, l 1.0).
        widen_factor (float): Width multiplier (n 0.25, s 0.5, m 0.75).
        last_stage_out_channels (int): Channel cap of the last stage before
            widening (n/s 1024, m 768, l/x 512).
        in_channels (int): Image channels. Defaults to 3.
        out_indices (Sequence[int]): Stages to return; 0 = stem (stride 2),
            1..4 = stages of stride 4, 8, 16, 32. Defaults to (2, 3, 4).
        frozen_stages (int): Stages (from the stem) with frozen weights and
            BN statistics; -1 freezes nothing.
        norm_eval (bool): Keep all BN layers in eval mode while training.
    """

    #: (out_channels, num_blocks, use_sppf) of stages 1-4, unscaled.
    arch_setting = [(128, 3, False), (256, 6, False), (512, 6, False),
                    (1024, 3, True)]

    def __init__(self,
                 deepen_factor: float = 0.33,
                 widen_factor: float = 0.25,
                 last_stage_out_channels: int = 1024,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (2, 3, 4),
                 frozen_stages: int = -1,
                 norm_cfg: ConfigType = YOLOV8_NORM_CFG,
                 act_cfg: ConfigType = YOLOV8_ACT_CFG,
                 norm_eval: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not set(out_indices) <= {0, 1, 2, 3, 4}:
            raise ValueError(f'out_indices must be within 0..4, got '
                             f'{out_indices}')
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        def ch(c: int) -> int:
            return scale_channels(c, widen_factor, last_stage_out_channels)

        stem_ch = ch(64)
        self.stem = ConvModule(
            in_channels, stem_ch, 3, stride=2, padding=1, norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.layers = ['stem']
        channels: List[int] = [stem_ch]
        prev = stem_ch
        for i, (out_c, n, use_sppf) in enumerate(self.arch_setting):
            out_c = ch(out_c)
            stage = [
                ConvModule(prev, out_c, 3, stride=2, padding=1,
                           norm_cfg=norm_cfg, act_cfg=act_cfg),
                C2f(out_c, out_c, scale_depth(n, deepen_factor),
                    add_identity=True, norm_cfg=norm_cfg, act_cfg=act_cfg)
            ]
            if use_sppf:
                stage.append(SPPF(out_c, out_c, 5, norm_cfg=norm_cfg,
                                  act_cfg=act_cfg))
            name = f'stage{i + 1}'
            self.add_module(name, nn.Sequential(*stage))
            self.layers.append(name)
            channels.append(out_c)
            prev = out_c
        #: Channels / strides of the returned maps, in order.
        self.out_channels = [channels[i] for i in self.out_indices]
        self.out_strides = [2**(i + 1) for i in self.out_indices]

    def _freeze_stages(self) -> None:
        for i in range(self.frozen_stages + 1):
            module = getattr(self, self.layers[i])
            module.eval()
            for p in module.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'YOLOv8CSPDarknet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(B, in_channels, H, W) -> tuple of maps at ``out_indices``."""
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
