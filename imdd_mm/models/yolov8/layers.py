# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Building blocks of the YOLOv8 baseline: channel/depth scaling helpers,
the bottleneck, the C2f block and SPPF.

Written for imdd-mm from the published architecture description of YOLOv8
(C2f = a CSP block with two convolutions whose output concatenates the
outputs of every bottleneck; SPPF = three chained 5x5 max-pools). Each
convolution is Conv2d (no bias) + BatchNorm (eps 1e-3, momentum 0.03) + SiLU,
built with mmcv's :class:`~mmcv.cnn.ConvModule`.
"""
import math
from typing import List

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmdet.utils import ConfigType
from torch import Tensor

#: Norm / activation of every YOLOv8 convolution (BN eps 1e-3, momentum 0.03).
YOLOV8_NORM_CFG = dict(type='BN', momentum=0.03, eps=0.001)
YOLOV8_ACT_CFG = dict(type='SiLU', inplace=True)


def make_divisible(x: float, divisor: int = 8) -> int:
    """Smallest multiple of ``divisor`` that is >= ``x``."""
    return int(math.ceil(x / divisor) * divisor)


def scale_channels(channels: int, widen_factor: float,
                   max_channels: int = 1024, divisor: int = 8) -> int:
    """Channel count of a scaled model: ``min(c, max) * widen`` rounded up to
    a multiple of ``divisor``."""
    return make_divisible(min(channels, max_channels) * widen_factor, divisor)


def scale_depth(num_blocks: int, deepen_factor: float) -> int:
    """Number of bottlenecks of a scaled model (at least one)."""
    return max(round(num_blocks * deepen_factor), 1) if num_blocks > 1 \
        else num_blocks


class Bottleneck(nn.Module):
    """Two 3x3 convolutions with an optional residual connection.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        expansion (float): Hidden channels = ``out_channels * expansion``.
        add_identity (bool): Add the input to the output (only when
            ``in_channels == out_channels``).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 expansion: float = 1.0,
                 add_identity: bool = True,
                 norm_cfg: ConfigType = YOLOV8_NORM_CFG,
                 act_cfg: ConfigType = YOLOV8_ACT_CFG) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = ConvModule(
            in_channels, hidden, 3, padding=1, norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.conv2 = ConvModule(
            hidden, out_channels, 3, padding=1, norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.add_identity = add_identity and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return x + out if self.add_identity else out


class C2f(nn.Module):
    """CSP block with two convolutions ("C2f") of YOLOv8.

    A 1x1 convolution maps the input to ``2 * h`` channels
    (``h = out_channels * expansion``) which are split in two halves; ``n``
    bottlenecks are chained on the second half and every intermediate output
    is kept. The ``(2 + n) * h`` concatenated channels are fused by a final
    1x1 convolution.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        num_blocks (int): Number of bottlenecks ``n``.
        add_identity (bool): Residual connections inside the bottlenecks
            (True in the backbone, False in the neck).
        expansion (float): Hidden channel ratio. Defaults to 0.5.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 num_blocks: int = 1,
                 add_identity: bool = False,
                 expansion: float = 0.5,
                 norm_cfg: ConfigType = YOLOV8_NORM_CFG,
                 act_cfg: ConfigType = YOLOV8_ACT_CFG) -> None:
        super().__init__()
        self.hidden = int(out_channels * expansion)
        self.main_conv = ConvModule(
            in_channels, 2 * self.hidden, 1, norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.final_conv = ConvModule(
            (2 + num_blocks) * self.hidden, out_channels, 1,
            norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.blocks = nn.ModuleList(
            Bottleneck(self.hidden, self.hidden, expansion=1.0,
                       add_identity=add_identity, norm_cfg=norm_cfg,
                       act_cfg=act_cfg) for _ in range(num_blocks))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W)."""
        outs: List[Tensor] = list(self.main_conv(x).chunk(2, dim=1))
        for block in self.blocks:
            outs.append(block(outs[-1]))
        return self.final_conv(torch.cat(outs, dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling - fast: a 1x1 reduction to ``in/2`` channels,
    three chained ``k x k`` max-pools (stride 1), concatenation of the four
    maps and a 1x1 fusion convolution.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Max-pool kernel. Defaults to 5.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 5,
                 norm_cfg: ConfigType = YOLOV8_NORM_CFG,
                 act_cfg: ConfigType = YOLOV8_ACT_CFG) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = ConvModule(
            in_channels, hidden, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.pool = nn.MaxPool2d(kernel_size, stride=1,
                                 padding=kernel_size // 2)
        self.conv2 = ConvModule(
            hidden * 4, out_channels, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W)."""
        y0 = self.conv1(x)
        y1 = self.pool(y0)
        y2 = self.pool(y1)
        y3 = self.pool(y2)
        return self.conv2(torch.cat([y0, y1, y2, y3], dim=1))
