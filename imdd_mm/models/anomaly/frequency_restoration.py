# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Frequency-aware image restoration in the spirit of FAIR (Liu et al.,
"FAIR: Frequency-aware Image Restoration for Industrial Visual Anomaly
Detection", 2023), written for imdd-mm from the paper's abstract.

What the paper's abstract states and this implements: a self-supervised
restoration task that restores an image **from its high-frequency
components** with a plain ("vanilla") U-Net trained on normal images only;
the anomaly map is the restoration error (anomalies' errors are mostly
low-frequency, which the high-pass input does not carry).

What we could not read and chose ourselves (hence "FAIR-style"): the exact
high-pass filter and its cut-off (here a Gaussian high-pass filter
``1 - exp(-r^2 / (2 * cutoff^2))`` on the centred 2-D spectrum, ``r`` the
radial frequency in cycles per pixel), the network widths, the training
losses (here MSE plus ``ssim_weight * (1 - SSIM)``) and the post-processing
of the error map (here the channel mean of the squared error, smoothed by
the shared Gaussian, image score the mean of the top ``image_topk``
fraction of the smoothed map).
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import OptConfigType, OptMultiConfig
from .base import BaseAnomalyDetector, smoothed_topk_mean


def gaussian_high_pass(x: Tensor, cutoff: float) -> Tensor:
    """Gaussian high-pass filter in the Fourier domain.

    Args:
        x (Tensor): (B, C, H, W) images.
        cutoff (float): Gaussian cut-off in cycles per pixel (0, 0.5].

    Returns:
        Tensor: (B, C, H, W) real high-frequency component (zero mean).
    """
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h, device=x.device).view(-1, 1)
    fx = torch.fft.fftfreq(w, device=x.device).view(1, -1)
    radius2 = fy**2 + fx**2
    gain = 1.0 - torch.exp(-radius2 / (2.0 * cutoff**2))
    spec = torch.fft.fft2(x.float())
    return torch.fft.ifft2(spec * gain).real.to(x.dtype)


def ssim_map(x: Tensor, y: Tensor, window: int = 7) -> Tensor:
    """Mean-filter SSIM map (B, H, W) of images in [-1, 1] (averaged over
    channels; constants of Wang et al. 2004 for a data range of 2)."""
    c1, c2 = (0.01 * 2)**2, (0.03 * 2)**2
    pad = window // 2

    def mean(t: Tensor) -> Tensor:
        return F.avg_pool2d(t, window, 1, pad, count_include_pad=False)

    mx, my = mean(x), mean(y)
    vx = mean(x * x) - mx * mx
    vy = mean(y * y) - my * my
    cov = mean(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / (
        (mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=1)


class PlainUNet(nn.Module):
    """mmseg's ``UNet`` backbone with a 1×1 output convolution: an image
    (B, in_channels, H, W) to an image (B, out_channels, H, W); H and W
    must be divisible by ``2 ** (num_stages - 1)``."""

    def __init__(self,
                 in_channels: int = 3,
                 out_channels: int = 3,
                 base_channels: int = 64,
                 num_stages: int = 5) -> None:
        super().__init__()
        from mmseg.models.backbones.unet import InterpConv, UNet
        n = int(num_stages)
        self.unet = UNet(
            in_channels=in_channels,
            base_channels=base_channels,
            num_stages=n,
            strides=(1, ) * n,
            enc_num_convs=(2, ) * n,
            dec_num_convs=(2, ) * (n - 1),
            downsamples=(True, ) * (n - 1),
            enc_dilations=(1, ) * n,
            dec_dilations=(1, ) * (n - 1),
            upsample_cfg=dict(type=InterpConv))  # class: any default scope
        self.head = nn.Conv2d(base_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.unet(x)[-1])


@MODELS.register_module()
class FrequencyRestorationAD(BaseAnomalyDetector):
    """FAIR-style anomaly detection: restore images from their high
    frequencies, score the restoration error.

    Normalisation: the squared error of images in [-1, 1] (the output is
    clamped to that range) lies in [0, 4];
    ``normalize_scores`` divides by 4 (a fixed increasing map).

    Args:
        base_channels (int): U-Net width. Defaults to 64.
        num_stages (int): U-Net depth (stages). Defaults to 5.
        cutoff (float): Gaussian high-pass cut-off, cycles per pixel.
            Defaults to 0.05.
        ssim_weight (float): Weight of the ``1 - SSIM`` loss term.
            Defaults to 1.
        image_topk (float): Fraction of the smoothed map averaged for the
            image score. Defaults to 0.01.
    """

    def __init__(self,
                 base_channels: int = 64,
                 num_stages: int = 5,
                 cutoff: float = 0.05,
                 ssim_weight: float = 1.0,
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
        if not 0 < cutoff <= 0.5:
            raise ValueError(f'cutoff must be in (0, 0.5], got {cutoff}')
        self.restorer = PlainUNet(3, 3, base_channels, num_stages)
        self.cutoff = float(cutoff)
        self.ssim_weight = float(ssim_weight)
        self.image_topk = float(image_topk)

    def restore(self, inputs: Tensor) -> Tensor:
        """Restoration (B, 3, H, W) of ``inputs`` (B, 3, H, W) in [-1, 1]
        from their high-pass component."""
        return self.restorer(gaussian_high_pass(inputs, self.cutoff))

    def loss(self, inputs: Tensor,
             data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        """MSE + ``ssim_weight * (1 - SSIM)`` on normal images."""
        out = self.restore(inputs)
        losses = dict(loss_mse=F.mse_loss(out.float(), inputs.float()))
        if self.ssim_weight > 0:
            losses['loss_ssim'] = self.ssim_weight * (
                1.0 - ssim_map(out.float(), inputs.float()).mean())
        return losses

    def anomaly_maps(
        self,
        inputs: Tensor,
        data_samples: Optional[List[DetDataSample]] = None
    ) -> Tuple[Tensor, Tensor]:
        with torch.no_grad():
            out = self.restore(inputs).float().clamp(-1.0, 1.0)
        maps = ((inputs.float() - out)**2).mean(dim=1)
        return maps, smoothed_topk_mean(maps, self.smooth_sigma,
                                        self.image_topk)

    def normalize_scores(self, scores: Tensor) -> Tensor:
        return (scores / 4.0).clamp(0.0, 1.0)
