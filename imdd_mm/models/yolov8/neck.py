# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""PAN-FPN neck of YOLOv8.

Top-down: upsample P5, concatenate P4, C2f -> T4; upsample T4, concatenate
P3, C2f -> out P3. Bottom-up: 3x3/2 conv of out P3, concatenate T4, C2f ->
out P4; 3x3/2 conv of out P4, concatenate P5, C2f -> out P5. No residuals in
the neck's bottlenecks and no 1x1 lateral reductions.

Outputs: three maps with strides 8/16/32 and the same channels as the
backbone outputs (``(256, 512, min(1024, last)) * widen``).
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor

from .layers import (C2f, YOLOV8_ACT_CFG, YOLOV8_NORM_CFG, scale_channels,
                     scale_depth)


@MODELS.register_module()
class YOLOv8PAFPN(BaseModule):
    """YOLOv8 PAN-FPN.

    Args:
        in_channels (Sequence[int]): Unscaled input channels (P3, P4, P5),
            default (256, 512, 1024).
        out_channels (Sequence[int]): Unscaled output channels, default equal
            to ``in_channels``.
        deepen_factor (float): Depth multiplier (bottlenecks per C2f = 3 *
            deepen).
        widen_factor (float): Width multiplier.
        last_stage_out_channels (int): Channel cap before widening (as in the
            backbone).
        num_blocks (int): Unscaled bottlenecks per C2f. Defaults to 3.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (256, 512, 1024),
                 out_channels: Sequence[int] = (256, 512, 1024),
                 deepen_factor: float = 0.33,
                 widen_factor: float = 0.25,
                 last_stage_out_channels: int = 1024,
                 num_blocks: int = 3,
                 norm_cfg: ConfigType = YOLOV8_NORM_CFG,
                 act_cfg: ConfigType = YOLOV8_ACT_CFG,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != 3 or len(out_channels) != 3:
            raise ValueError('YOLOv8PAFPN takes exactly three levels '
                             f'(P3, P4, P5), got {in_channels} -> '
                             f'{out_channels}')

        def ch(c: int) -> int:
            return scale_channels(c, widen_factor, last_stage_out_channels)

        c3, c4, c5 = (ch(c) for c in in_channels)
        o3, o4, o5 = (ch(c) for c in out_channels)
        n = scale_depth(num_blocks, deepen_factor)
        cfg = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)

        self.upsample = nn.Upsample(scale_factor=2, mode='nearest')
        self.top_down_p4 = C2f(c5 + c4, o4, n, add_identity=False, **cfg)
        self.top_down_p3 = C2f(o4 + c3, o3, n, add_identity=False, **cfg)
        self.down_p3 = ConvModule(o3, o3, 3, stride=2, padding=1, **cfg)
        self.bottom_up_p4 = C2f(o3 + o4, o4, n, add_identity=False, **cfg)
        self.down_p4 = ConvModule(o4, o4, 3, stride=2, padding=1, **cfg)
        self.bottom_up_p5 = C2f(o4 + c5, o5, n, add_identity=False, **cfg)
        self.in_channels: List[int] = [c3, c4, c5]
        #: Channels of the three outputs (strides 8, 16, 32).
        self.out_channels: List[int] = [o3, o4, o5]

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """(P3, P4, P5) of strides 8/16/32 -> (N3, N4, N5), same strides."""
        if len(inputs) != 3:
            raise ValueError(f'expected 3 feature maps, got {len(inputs)}')
        p3, p4, p5 = inputs
        t4 = self.top_down_p4(torch.cat([self.upsample(p5), p4], 1))
        n3 = self.top_down_p3(torch.cat([self.upsample(t4), p3], 1))
        n4 = self.bottom_up_p4(torch.cat([self.down_p3(n3), t4], 1))
        n5 = self.bottom_up_p5(torch.cat([self.down_p4(n4), p5], 1))
        return n3, n4, n5
