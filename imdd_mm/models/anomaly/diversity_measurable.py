# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Diversity-measurable reconstruction in the spirit of DMAD (Liu et al.,
"Diversity-Measurable Anomaly Detection", CVPR 2023, arXiv:2303.05047),
written for imdd-mm (clean-room). Not a diffusion model.

Sources: the abstract and the official code (github.com/FlappyPeggy/DMAD,
read for facts only; configs/baselines/anomaly/README.md, "Faithfulness",
lists what comes from where).

What this implements (the abstract's design, in image space, the shape of
the code's ``DMAD-PDM`` variant): an encoder whose latent goes through an
**information compression module** (a memory of prototypes,
vector-quantised with a straight-through estimator; codebook loss + 0.25 x
commitment, as the official VQ layer), a decoder that produces a
**prototypical reference** image, and a **Pyramid Deformation Module**
(PDM) estimating **multi-scale deformation fields from the reconstructed
reference to the original input**; the final reconstruction is the warped
reference, and the anomaly score measures both the remaining error and the
severity of the deformation.

Not this model (hence "DMAD-style"): the variant behind the paper's MVTec
AD numbers, the code's ``DMAD-PPDM`` (pre-deformation of the input image,
Reverse Distillation of a frozen WRN-50, scored by feature cosine distance
warped back plus a weighted deformation magnitude), which is
:class:`~.reverse_distillation_ppdm.ReverseDistillationPPDM`
(DMAD-PPDM-style). Our choices: a stride-8 conv encoder/decoder without
skips, one small conv net per pyramid level, the memory size, the loss
weights (plain-reference error 0.1, total variation 0.1), the bound of the
offsets, and the score ``||x - warp(r)||^2`` channel mean +
``deform_weight`` x the field magnitude in normalised image units.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import OptConfigType, OptMultiConfig
from .base import BaseAnomalyDetector, smoothed_topk_mean
from .vector_quantizer import vector_quantize


def _conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Backward warping: ``out(p) = image(p + flow(p))``.

    Args:
        image (Tensor): (B, C, H, W).
        flow (Tensor): (B, 2, H, W) offsets (x, y) in normalised [-1, 1]
            coordinates.
    """
    b, _, h, w = image.shape
    ys = torch.linspace(-1, 1, h, device=image.device, dtype=image.dtype)
    xs = torch.linspace(-1, 1, w, device=image.device, dtype=image.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing='ij')
    grid = torch.stack([gx, gy], dim=-1)[None] + flow.permute(0, 2, 3, 1)
    return F.grid_sample(image, grid, mode='bilinear',
                         padding_mode='border', align_corners=True)


class PyramidDeformation(nn.Module):
    """Coarse-to-fine deformation field from a reference to an input.

    At each level (``scales``, coarse first) a small conv net sees the
    input and the currently warped reference and adds a bounded residual
    offset (``tanh * max_offset``, normalised units) to the upsampled
    field of the coarser level.
    """

    def __init__(self, scales: Sequence[float] = (0.25, 0.5, 1.0),
                 channels: int = 32, max_offset: float = 0.1) -> None:
        super().__init__()
        self.scales = tuple(float(s) for s in scales)
        self.max_offset = float(max_offset)
        self.nets = nn.ModuleList([
            nn.Sequential(
                _conv_block(6, channels), _conv_block(channels, channels),
                nn.Conv2d(channels, 2, 3, 1, 1)) for _ in self.scales
        ])
        for net in self.nets:  # start from the identity warp
            nn.init.zeros_(net[-1].weight)
            nn.init.zeros_(net[-1].bias)

    def forward(self, x: Tensor, ref: Tensor) -> Tensor:
        """Field (B, 2, H, W) such that ``warp(ref, field) ≈ x``."""
        h, w = x.shape[-2:]
        flow = None
        for scale, net in zip(self.scales, self.nets):
            size = (max(1, int(round(h * scale))), max(1,
                                                       int(round(w * scale))))
            xs = F.interpolate(x, size=size, mode='bilinear',
                               align_corners=False)
            rs = F.interpolate(ref, size=size, mode='bilinear',
                               align_corners=False)
            if flow is None:
                flow = xs.new_zeros(xs.shape[0], 2, *size)
            else:
                flow = F.interpolate(flow, size=size, mode='bilinear',
                                     align_corners=True)
            delta = torch.tanh(net(torch.cat([xs, warp(rs, flow)], 1)))
            flow = flow + self.max_offset * delta
        if flow.shape[-2:] != (h, w):
            flow = F.interpolate(flow, size=(h, w), mode='bilinear',
                                 align_corners=True)
        return flow


@MODELS.register_module()
class DiversityMeasurableAD(BaseAnomalyDetector):
    """DMAD-style prototype reconstruction + pyramid deformation.

    Normalisation: the squared error lies in [0, 4] and the field magnitude
    (normalised units, half the image size = 1) in [0, ``max_offset *
    len(scales) * sqrt(2)``]; ``normalize_scores`` divides by the weighted
    sum of the bounds (fixed, increasing).

    Args:
        channels (int): Encoder/decoder width. Defaults to 64.
        latent_dim (int): Latent (prototype) size. Defaults to 128.
        num_prototypes (int): Memory size. Defaults to 512.
        pdm_channels (int): Width of the deformation nets. Defaults to 32.
        scales (Sequence[float]): Pyramid levels. Defaults to (0.25, 0.5,
            1.0).
        max_offset (float): Per-level offset bound (normalised units).
            Defaults to 0.1.
        ref_weight (float): Weight of ``||x - r||^2``. Defaults to 0.1.
        commitment (float): VQ commitment weight. Defaults to 0.25.
        smooth_weight (float): Total-variation weight of the field.
            Defaults to 0.1.
        deform_weight (float): Weight of the field magnitude (normalised
            units) in the score. Defaults to 1.
        image_topk (float): Fraction of the smoothed map averaged for the
            image score. Defaults to 0.01.
    """

    def __init__(self,
                 channels: int = 64,
                 latent_dim: int = 128,
                 num_prototypes: int = 512,
                 pdm_channels: int = 32,
                 scales: Sequence[float] = (0.25, 0.5, 1.0),
                 max_offset: float = 0.1,
                 ref_weight: float = 0.1,
                 commitment: float = 0.25,
                 smooth_weight: float = 0.1,
                 deform_weight: float = 1.0,
                 image_topk: float = 0.01,
                 smooth_sigma: float = 4.0,
                 image_threshold: float = 0.5,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor,
            smooth_sigma=smooth_sigma,
            image_threshold=image_threshold,
            init_cfg=init_cfg)
        c = int(channels)
        self.encoder = nn.Sequential(
            _conv_block(3, c, 2), _conv_block(c, 2 * c, 2),
            _conv_block(2 * c, 4 * c, 2), nn.Conv2d(4 * c, latent_dim, 1))
        self.prototypes = nn.Parameter(
            torch.randn(num_prototypes, latent_dim) * latent_dim**-0.5)
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_dim, 4 * c, 1), nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode='bilinear'),
            _conv_block(4 * c, 2 * c),
            nn.Upsample(scale_factor=2, mode='bilinear'),
            _conv_block(2 * c, c),
            nn.Upsample(scale_factor=2, mode='bilinear'),
            _conv_block(c, c), nn.Conv2d(c, 3, 3, 1, 1), nn.Tanh())
        self.pdm = PyramidDeformation(scales, pdm_channels, max_offset)
        self.ref_weight = float(ref_weight)
        self.commitment = float(commitment)
        self.smooth_weight = float(smooth_weight)
        self.deform_weight = float(deform_weight)
        self.image_topk = float(image_topk)
        self._flow_bound = float(max_offset) * len(self.pdm.scales) * 2**0.5

    def quantize(self, z: Tensor) -> Tuple[Tensor, Tensor]:
        """Nearest prototypes (straight-through) of latents (B, D, h, w)
        and the VQ + commitment loss (:func:`vector_quantize`)."""
        return vector_quantize(z, self.prototypes, self.commitment)

    def forward_train(self, inputs: Tensor) -> Dict[str, Tensor]:
        """Reference, deformation field, warped reference and VQ loss."""
        h, w = inputs.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(f'DMAD-style needs inputs divisible by 8, got '
                             f'{(h, w)}')
        zq, loss_vq = self.quantize(self.encoder(inputs))
        ref = self.decoder(zq)
        flow = self.pdm(inputs, ref)
        return dict(ref=ref, flow=flow, warped=warp(ref, flow),
                    loss_vq=loss_vq)

    def loss(self, inputs: Tensor,
             data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        out = self.forward_train(inputs)
        flow = out['flow']
        tv = (flow[..., 1:, :] - flow[..., :-1, :]).abs().mean() + \
            (flow[..., :, 1:] - flow[..., :, :-1]).abs().mean()
        return dict(
            loss_rec=F.mse_loss(out['warped'], inputs),
            loss_ref=self.ref_weight * F.mse_loss(out['ref'], inputs),
            loss_vq=out['loss_vq'],
            loss_smooth=self.smooth_weight * tv)

    def anomaly_maps(
        self,
        inputs: Tensor,
        data_samples: Optional[List[DetDataSample]] = None
    ) -> Tuple[Tensor, Tensor]:
        with torch.no_grad():
            out = self.forward_train(inputs)
        err = ((inputs - out['warped'])**2).mean(dim=1)
        maps = err + self.deform_weight * out['flow'].norm(dim=1)
        return maps, smoothed_topk_mean(maps, self.smooth_sigma,
                                        self.image_topk)

    def normalize_scores(self, scores: Tensor) -> Tensor:
        bound = 4.0 + self.deform_weight * self._flow_bound
        return (scores / bound).clamp(0.0, 1.0)
