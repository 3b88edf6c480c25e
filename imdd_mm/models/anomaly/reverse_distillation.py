# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Reverse Distillation pieces (Deng & Li, "Anomaly Detection via Reverse
Distillation from One-Class Embedding", CVPR 2022), written for imdd-mm
(clean-room; architecture facts from the paper and its official code,
github.com/hq-deng/RD4AD, read for facts only).

A frozen ResNet teacher gives three stage outputs ``(f1, f2, f3)`` (strides
4, 8, 16). :class:`OneClassBottleneck` (RD's "OCBE") fuses them (multi-scale
feature fusion: ``f1`` and ``f2`` brought to ``f3``'s resolution by stride-2
3x3 conv-BN-ReLUs, concatenated with ``f3``) and compresses the result with
one residual ResNet stage (stride 2) into a compact embedding of ``2 c3``
channels at stride 32. :class:`ReverseResNetDecoder` (the student) mirrors
the teacher: three residual stages that upsample by 2 with 2x2 transposed
convolutions and return features with the teacher's channels at strides 4,
8, 16. Both follow the teacher's block type (Bottleneck for ResNet-50 /
WideResNet-50-2, BasicBlock for ResNet-18/34) and width.

With ``vq`` (DMAD-PPDM's image-level variant) every level is first reduced
to ``reduce_channels`` channels and the raw ``f3`` is additionally vector
quantised (:class:`~.vector_quantizer.VectorQuantizer`) and concatenated.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from .vector_quantizer import VectorQuantizer


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True))


def _init_like_resnet(module: nn.Module) -> None:
    """Kaiming-normal (fan out) convolutions, BN weight 1 / bias 0, as the
    torchvision ResNets and RD's trainable parts are initialised."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode='fan_out',
                                    nonlinearity='relu')
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class OneClassBottleneck(nn.Module):
    """RD's one-class bottleneck embedding (multi-scale fusion + one
    residual stage), optionally with DMAD-PPDM's VQ branch.

    Args:
        in_channels (Sequence[int]): Teacher channels ``(c1, c2, c3)``.
        bottleneck (bool): Bottleneck (expansion 4) residual blocks, else
            BasicBlocks.
        num_blocks (int): Blocks of the residual stage. Defaults to 3.
        width_per_group (int): Bottleneck width factor (128 for
            WideResNet-50-2). Defaults to 64.
        num_codes (int, optional): VQ codebook size; ``None``: no VQ.
        reduce_channels (int, optional): Per-level channels of the VQ
            variant. Defaults to ``c3 // 16`` (64 for WRN-50).
        commitment (float): VQ commitment weight. Defaults to 0.25.

    Output:
        ``forward([f1, f2, f3])`` returns the embedding (B, 2 c3, H/32,
        W/32) and the VQ loss (a zero tensor without VQ).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 bottleneck: bool = True,
                 num_blocks: int = 3,
                 width_per_group: int = 64,
                 num_codes: Optional[int] = None,
                 reduce_channels: Optional[int] = None,
                 commitment: float = 0.25) -> None:
        super().__init__()
        c1, c2, c3 = (int(c) for c in in_channels)
        if num_codes is None:
            self.vq = None
            self.reduce = None
            self.fuse1 = nn.Sequential(
                _conv_bn_relu(c1, c2, 2), _conv_bn_relu(c2, c3, 2))
            self.fuse2 = _conv_bn_relu(c2, c3, 2)
            cat = 3 * c3
        else:
            r = int(reduce_channels or max(1, c3 // 16))
            self.reduce = nn.ModuleList(
                [_conv_bn_relu(c, r) for c in (c1, c2, c3)])
            self.fuse1 = nn.Sequential(
                _conv_bn_relu(r, r, 2), _conv_bn_relu(r, r, 2))
            self.fuse2 = _conv_bn_relu(r, r, 2)
            self.vq = VectorQuantizer(int(num_codes), c3, commitment)
            cat = 3 * r + c3
        block = Bottleneck if bottleneck else BasicBlock
        out = 2 * c3
        planes = out // block.expansion
        kwargs = dict(base_width=width_per_group) if bottleneck else {}
        down = nn.Sequential(
            nn.Conv2d(cat, out, 1, 2, bias=False), nn.BatchNorm2d(out))
        blocks = [block(cat, planes, 2, down, **kwargs)]
        blocks += [block(out, planes, **kwargs)
                   for _ in range(num_blocks - 1)]
        self.stage = nn.Sequential(*blocks)
        self.out_channels = out
        _init_like_resnet(self)
        if self.vq is not None:  # keep the codebook's U(-1/K, 1/K) init
            k = self.vq.codebook.shape[0]
            nn.init.uniform_(self.vq.codebook, -1.0 / k, 1.0 / k)

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        f1, f2, f3 = feats
        if self.vq is not None:
            q3, loss = self.vq(f3)
            f1, f2, f3 = (m(f) for m, f in zip(self.reduce, (f1, f2, f3)))
            parts = [self.fuse1(f1), self.fuse2(f2), f3, q3]
        else:
            loss = f3.new_zeros(())
            parts = [self.fuse1(f1), self.fuse2(f2), f3]
        for p in parts[1:]:
            if p.shape[-2:] != parts[0].shape[-2:]:
                raise ValueError(
                    f'teacher levels do not align at stride 16: '
                    f'{[tuple(q.shape[-2:]) for q in parts]}; use inputs '
                    'divisible by 32')
        return self.stage(torch.cat(parts, dim=1)), loss


class _UpBottleneck(nn.Module):
    """Bottleneck block of the reverse ResNet: the 3x3 conv becomes a 2x2
    transposed conv when upsampling (stride 2)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 base_width: int = 64) -> None:
        super().__init__()
        width = int(planes * base_width / 64)
        out = planes * self.expansion
        mid = nn.ConvTranspose2d(width, width, 2, 2, bias=False) \
            if stride == 2 else nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.body = nn.Sequential(
            nn.Conv2d(inplanes, width, 1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True), mid, nn.BatchNorm2d(width),
            nn.ReLU(inplace=True), nn.Conv2d(width, out, 1, bias=False),
            nn.BatchNorm2d(out))
        self.shortcut = _shortcut(inplanes, out, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class _UpBasicBlock(nn.Module):
    """BasicBlock of the reverse ResNet (first conv transposed 2x2 when
    upsampling)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 base_width: int = 64) -> None:
        super().__init__()
        first = nn.ConvTranspose2d(inplanes, planes, 2, 2, bias=False) \
            if stride == 2 else nn.Conv2d(inplanes, planes, 3, 1, 1,
                                          bias=False)
        self.body = nn.Sequential(
            first, nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, 1, 1, bias=False),
            nn.BatchNorm2d(planes))
        self.shortcut = _shortcut(inplanes, planes, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 2:
        return nn.Sequential(
            nn.ConvTranspose2d(cin, cout, 2, 2, bias=False),
            nn.BatchNorm2d(cout))
    if cin != cout:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
    return nn.Identity()


class ReverseResNetDecoder(nn.Module):
    """RD's student: a ResNet run backwards from the embedding.

    Args:
        out_channels (Sequence[int]): Teacher channels ``(c1, c2, c3)``;
            the input has ``2 c3`` channels.
        bottleneck (bool): Bottleneck blocks (else BasicBlocks).
        layers (Sequence[int]): Blocks per stage, from the embedding
            outwards (RD: ``(3, 4, 6)`` for WRN-50, ``(2, 2, 2)`` for
            ResNet-18).
        width_per_group (int): Bottleneck width factor.

    Output:
        ``forward(z)`` with ``z`` (B, 2 c3, H/32, W/32) returns
        ``[g1, g2, g3]`` with the teacher's shapes (strides 4, 8, 16).
    """

    def __init__(self,
                 out_channels: Sequence[int],
                 bottleneck: bool = True,
                 layers: Sequence[int] = (3, 4, 6),
                 width_per_group: int = 64) -> None:
        super().__init__()
        block = _UpBottleneck if bottleneck else _UpBasicBlock
        c1, c2, c3 = (int(c) for c in out_channels)
        if len(layers) != 3:
            raise ValueError(f'layers needs 3 stage depths, got {layers}')
        inplanes = 2 * c3
        stages = []
        for cout, depth in zip((c3, c2, c1), layers):
            planes = cout // block.expansion
            blocks = [block(inplanes, planes, 2, width_per_group)]
            blocks += [block(cout, planes, 1, width_per_group)
                       for _ in range(int(depth) - 1)]
            stages.append(nn.Sequential(*blocks))
            inplanes = cout
        self.stages = nn.ModuleList(stages)
        _init_like_resnet(self)

    def forward(self, z: Tensor) -> List[Tensor]:
        outs = []
        for stage in self.stages:
            z = stage(z)
            outs.append(z)
        return outs[::-1]
