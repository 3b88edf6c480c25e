# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""DMAD-PPDM-style pre-deformation of the input image (Liu et al.,
"Diversity-Measurable Anomaly Detection", CVPR 2023), written for imdd-mm
(clean-room; facts from the official code, github.com/FlappyPeggy/DMAD,
``DMAD-PPDM/resnet.py``, read for facts only).

A small CoordConv network looks at the image and predicts four bounded
offset fields (``tanh`` x bound, normalised [-1, 1] units): a **coarse**
field at 1/8 resolution (bound 2 x 8 / 256: 8 px at 256 px) and a **fine**
one at 1/2 resolution (2 x 3 / 256: 3 px), each bilinearly upsampled to the
input size, plus one **inverse** field of each. The image is warped by the
coarse field and then by the fine one (``deformed``); warping ``deformed``
by the inverse fine and then the inverse coarse field must give the input
back (the MSE of that is a training loss), and the same inverse warps bring
score maps computed on ``deformed`` back to the input's geometry.

Ours: the coordinate channels are the absolute position and the position
inside ``coord_cell`` x ``coord_cell`` pixel cells (the official code uses
an equivalent pair, absolute minus cell position and cell position); the
3x3 smoothness penalty sums the per-channel absolute deviations (the
official filter sums the deviations of both channels before the absolute
value); warping clamps to the border (the official code clamps the
sampling grid to [-1, 1], which samples the same pixels).
"""
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .diversity_measurable import warp

#: Field names, in the order they are predicted.
FIELDS = ('coarse', 'fine', 'coarse_inv', 'fine_inv')


def coordinate_channels(x: Tensor, cell: int) -> Tensor:
    """Four (B, 4, H, W) coordinate maps in [-1, 1]: absolute x, y and the
    x, y inside ``cell`` x ``cell`` pixel cells."""
    b, _, h, w = x.shape
    ys = torch.arange(h, device=x.device, dtype=x.dtype)
    xs = torch.arange(w, device=x.device, dtype=x.dtype)

    def scaled(v: Tensor, n: int) -> Tensor:
        return v / max(n - 1, 1) * 2 - 1

    cell = max(int(cell), 2)
    gy, gx = torch.meshgrid(ys, xs, indexing='ij')
    coords = torch.stack([
        scaled(gx, w), scaled(gy, h),
        scaled(gx % cell, cell), scaled(gy % cell, cell)
    ])
    return coords[None].expand(b, -1, -1, -1)


class CoordConv2d(nn.Module):
    """3x3 convolution over the input and :func:`coordinate_channels`."""

    def __init__(self, in_channels: int, out_channels: int,
                 cell: int = 4) -> None:
        super().__init__()
        self.cell = int(cell)
        self.conv = nn.Conv2d(in_channels + 4, out_channels, 3, 1, 1,
                              bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(torch.cat([x, coordinate_channels(x, self.cell)],
                                   dim=1))


def _field_head(cin: int, channels: int, downsamples: int) -> nn.Sequential:
    """``downsamples`` stride-2 conv-BN-ReLUs, then a 3x3 conv to 2
    channels and tanh."""
    layers = []
    for i in range(downsamples):
        layers += [
            nn.Conv2d(cin if i == 0 else channels, channels, 3, 2, 1),
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        ]
    layers += [nn.Conv2d(channels, 2, 3, 1, 1), nn.Tanh()]
    return nn.Sequential(*layers)


def smoothness(field: Tensor) -> Tensor:
    """Mean over pixels of ``sum_c |f_c - mean of its 8 neighbours|`` of a
    (B, C, H, W) field (zero padding, as the official 3x3 filter)."""
    c = field.shape[1]
    kernel = field.new_full((3, 3), -1.0 / 8)
    kernel[1, 1] = 1.0
    kernel = kernel.expand(c, 1, 3, 3)
    dev = F.conv2d(F.pad(field, (1, 1, 1, 1)), kernel, groups=c)
    return dev.abs().sum(dim=1).mean()


class PreDeformation(nn.Module):
    """The pre-deformation module of DMAD-PPDM (see the module docstring).

    Args:
        in_channels (int): Image channels. Defaults to 3.
        channels (int): Width (64 in the official code).
        strides (Sequence[int]): Resolution divisors of the coarse and the
            fine field (8, 2); each must be a power of 2.
        max_offsets (Sequence[float]): Bounds of the coarse and the fine
            offsets in normalised units (half the image = 1). Defaults to
            ``(2 * 8 / 256, 2 * 3 / 256)``.
        coord_cell (int): Cell size of the local coordinate channels.
            Defaults to 4.

    Output:
        ``forward(x)`` returns a dict with ``deformed`` (B, C, H, W) and
        the four fields :data:`FIELDS` (B, 2, H, W) at the input size.
    """

    def __init__(self,
                 in_channels: int = 3,
                 channels: int = 64,
                 strides: Sequence[int] = (8, 2),
                 max_offsets: Sequence[float] = (2 * 8 / 256, 2 * 3 / 256),
                 coord_cell: int = 4) -> None:
        super().__init__()
        if len(strides) != 2 or len(max_offsets) != 2:
            raise ValueError('strides and max_offsets: (coarse, fine)')
        downs = []
        for s in strides:
            n = int(s).bit_length() - 1
            if s < 2 or 2**n != s:
                raise ValueError(f'field stride {s} is not a power of 2')
            downs.append(n)
        c = int(channels)
        self.stem = nn.Sequential(
            CoordConv2d(in_channels, c, coord_cell), nn.BatchNorm2d(c),
            nn.ReLU(inplace=True), CoordConv2d(c, c, coord_cell),
            nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.residual = nn.Sequential(
            nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1), nn.BatchNorm2d(c),
            nn.ReLU(), nn.Conv2d(c, c, 1))
        self.residual_norm = nn.BatchNorm2d(c)
        heads = [downs[0], downs[1], downs[0], downs[1]]
        self.heads = nn.ModuleDict(
            {name: _field_head(2 * c, c, n) for name, n in zip(FIELDS, heads)})
        self.max_offsets = dict(
            zip(FIELDS, [float(m) for m in max_offsets] * 2))

    @property
    def magnitude_bound(self) -> float:
        """Largest norm of coarse + fine offsets (normalised units)."""
        return 2**0.5 * (self.max_offsets['coarse'] +
                         self.max_offsets['fine'])

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        h, w = x.shape[-2:]
        f1 = self.stem(x)
        feat = torch.cat(
            [self.residual_norm(f1 + self.residual(f1)), f1], dim=1)
        out = {}
        for name in FIELDS:
            field = self.heads[name](feat) * self.max_offsets[name]
            out[name] = F.interpolate(field, size=(h, w), mode='bilinear',
                                      align_corners=True)
        out['deformed'] = warp(warp(x, out['coarse']), out['fine'])
        return out

    @staticmethod
    def undo(maps: Tensor, fields: Dict[str, Tensor]) -> Tensor:
        """Bring (B, C, H, W) maps on the deformed image back to the input
        geometry: the inverse fine warp, then the inverse coarse warp."""
        return warp(warp(maps, fields['fine_inv']), fields['coarse_inv'])

    @staticmethod
    def deformation_magnitude(fields: Dict[str, Tensor]) -> Tensor:
        """(B, H, W) magnitude of the inverse deformation at each input
        pixel: ``|fine_inv|`` warped by the inverse coarse field plus
        ``|coarse_inv|`` (the official score's deformation term)."""
        fine = fields['fine_inv'].norm(dim=1, keepdim=True)
        coarse = fields['coarse_inv'].norm(dim=1)
        return warp(fine, fields['coarse_inv'])[:, 0] + coarse
