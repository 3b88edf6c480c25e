# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Frequency-aware image restoration after FAIR (Liu et al., "FAIR:
Frequency-aware Image Restoration for Industrial Visual Anomaly
Detection", arXiv:2309.07068), written for imdd-mm (clean-room).

Sources: the paper's abstract (restore images from their high-frequency
components with a plain U-Net trained on normal images) and, for every
detail below, the authors' official code (github.com/liutongkun/FAIR,
commit 53452bd: ``train.py``, ``test.py``, ``data_loaderbhpf.py``,
``model_unetskip.py``, ``loss.py``, ``msgms.py``), read for facts only.

Implemented as there:

* Input: the **grayscale** image (ITU-R 601 luma, as ``cv2.cvtColor``
  ``BGR2GRAY``) in [0, 1], filtered by a 2-D **Butterworth high-pass**
  filter of order 2 and cut-off 30 frequency bins at 256 px
  (``cutoff = 30 / 256`` cycles per pixel here, so other input sizes keep
  the same fraction of the spectrum).
* Network: a U-Net with **additive** skip connections (encoder widths
  ``w, 2w, 4w, 8w, 8w``, two conv-BN-ReLU per stage, max-pooling; decoder:
  bilinear x2 upsampling + conv-BN-ReLU, then two conv-BN-ReLU on the sum
  with the skip), ``w = 128``, 1 input channel, 3 output channels, no
  output activation; convolutions initialised N(0, 0.02), BN weights
  N(1, 0.02).
* Target: the clean colour image in [0, 1]; loss ``MSE + (1 - SSIM)``
  (Gaussian window 11, sigma 1.5, data range 1).
* Training: 30 % of the training images are rotated by U(-90, 90)
  degrees (input and target); the inputs carry synthetic anomalies (1/4
  cut-paste, 1/4 Perlin blend with a DTD texture or, without
  ``texture_dir``, another training image, each through 3 random
  augmenters of the original's lists; 1/2 clean;
  :mod:`.synthetic_anomalies`, :mod:`.source_augmenters`).
* Score: ``MSGMS(x, x_hat) + 0.0003 * ((a - a_hat)^2 + (b - b_hat)^2)``
  (multi-scale gradient-magnitude similarity, 2 scales, Prewitt, ``c =
  0.0026``; CIELAB a/b), 21 x 21 mean filter; image score = the map's
  maximum.

Scored as the original: the raw restoration (not clamped), and the colour
term of its quirk, CIELAB of the channel-reversed images (it feeds
OpenCV's BGR arrays to an RGB-to-Lab conversion; ours are RGB).

Different from the original (so "FAIR-style"): without ``texture_dir`` the
Perlin source is drawn from the batch (the original: from the whole
training set), and the map is resized to the original image size
afterwards (shared post-processing); see
``configs/baselines/anomaly/README.md`` ("Faithfulness") for the rest.
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import OptConfigType, OptMultiConfig
from .base import BaseAnomalyDetector
from .synthetic_anomalies import (list_textures, random_rotate,
                                  synthesize_anomalies)

#: ITU-R BT.601 luma weights (R, G, B), as OpenCV's RGB/BGR-to-gray.
LUMA = (0.299, 0.587, 0.114)


def butterworth_high_pass(x: Tensor, cutoff: float, order: int = 2) -> Tensor:
    """Butterworth high-pass filter in the Fourier domain.

    Gain ``1 / (1 + (cutoff / r) ** (2 * order))`` with ``r`` the radial
    frequency in cycles per pixel (0 at DC).

    Args:
        x (Tensor): (B, C, H, W) images.
        cutoff (float): Cut-off frequency, cycles per pixel, in (0, 0.5].
        order (int): Filter order.

    Returns:
        Tensor: (B, C, H, W) real high-frequency component.
    """
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h, device=x.device).view(-1, 1)
    fx = torch.fft.fftfreq(w, device=x.device).view(1, -1)
    radius = torch.sqrt(fy**2 + fx**2)
    gain = torch.where(
        radius > 0, 1.0 / (1.0 + (cutoff / radius.clamp_min(1e-12))**(
            2 * order)), torch.zeros_like(radius))
    spec = torch.fft.fft2(x.float())
    return torch.fft.ifft2(spec * gain).real.to(x.dtype)


def _gaussian_window(size: int, sigma: float) -> Tensor:
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-coords**2 / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim_map(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5,
             data_range: float = 1.0) -> Tensor:
    """SSIM map (B, C, H, W) with a Gaussian window (zero padding),
    constants of Wang et al. 2004 (``K1 = 0.01``, ``K2 = 0.03``)."""
    c = x.shape[1]
    kernel = _gaussian_window(window, sigma).to(x)[None, None].repeat(
        c, 1, 1, 1)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel, padding=window // 2, groups=c)

    c1, c2 = (0.01 * data_range)**2, (0.03 * data_range)**2
    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cov = blur(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cov + c2)) / (
        (mx * mx + my * my + c1) * (vx + vy + c2))


def msgms_map(x: Tensor, y: Tensor, num_scales: int = 2,
              c: float = 0.0026) -> Tensor:
    """Multi-scale gradient-magnitude-similarity anomaly map (B, H, W):
    ``1 - mean_scales(mean_channels(GMS))``, Prewitt gradients (kernels
    divided by 3, zero padding), ``GMS = (2 g1 g2 + c) / (g1^2 + g2^2 + c)``;
    scale ``s`` average-pools by ``2**s`` and is upsampled back
    bilinearly."""
    h, w = x.shape[-2:]
    ch = x.shape[1]
    px = x.new_tensor([[1., 0., -1.], [1., 0., -1.], [1., 0., -1.]]) / 3.0
    kx = px[None, None].repeat(ch, 1, 1, 1)
    ky = px.t()[None, None].repeat(ch, 1, 1, 1)

    def grad_mag(t: Tensor) -> Tensor:
        gx = F.conv2d(t, kx, padding=1, groups=ch)
        gy = F.conv2d(t, ky, padding=1, groups=ch)
        return torch.sqrt(gx**2 + gy**2 + 1e-12)

    total = x.new_zeros(x.shape[0], ch, h, w)
    for scale in range(num_scales):
        if scale > 0:
            x = F.avg_pool2d(x, 2)
            y = F.avg_pool2d(y, 2)
        g1, g2 = grad_mag(x), grad_mag(y)
        gms = (2 * g1 * g2 + c) / (g1**2 + g2**2 + c)
        total = total + F.interpolate(
            gms, size=(h, w), mode='bilinear', align_corners=False)
    return (1.0 - total / num_scales).mean(dim=1)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB (B, 3, H, W) in [0, 1] to CIELAB (D65 white): L in [0, 100]."""
    lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055)**2.4,
                      rgb / 12.92)
    m = rgb.new_tensor([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
    xyz = torch.einsum('ij,bjhw->bihw', m, lin)
    white = rgb.new_tensor([0.950456, 1.0, 1.088754]).view(1, 3, 1, 1)
    t = xyz / white
    eps = (6.0 / 29.0)**3
    f = torch.where(t > eps, t.clamp_min(eps)**(1.0 / 3.0),
                    t / (3 * (6.0 / 29.0)**2) + 4.0 / 29.0)
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return torch.stack(
        [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


def _conv_bn_relu(cin: int, cout: int) -> List[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class AdditiveSkipUNet(nn.Module):
    """U-Net whose skips are added (not concatenated) to the upsampled
    decoder features: (B, in_channels, H, W) to (B, out_channels, H, W),
    H and W divisible by ``2 ** (num_stages - 1)``.

    Encoder stage ``i`` has ``base_channels * 2 ** min(i, num_stages - 2)``
    channels (``w, 2w, 4w, 8w, 8w`` for 5 stages).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 3,
                 base_channels: int = 128, num_stages: int = 5) -> None:
        super().__init__()
        n = int(num_stages)
        if n < 2:
            raise ValueError(f'num_stages must be >= 2, got {n}')
        widths = [base_channels * 2**min(i, n - 2) for i in range(n)]
        self.encoder = nn.ModuleList()
        cin = in_channels
        for wd in widths:
            self.encoder.append(
                nn.Sequential(*_conv_bn_relu(cin, wd), *_conv_bn_relu(wd, wd)))
            cin = wd
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for j in range(n - 2, -1, -1):  # deepest skip first
            wd, out = widths[j], widths[max(j - 1, 0)]
            self.up.append(nn.Sequential(
                nn.Upsample(scale_factor=2, mode='bilinear',
                            align_corners=True), *_conv_bn_relu(wd, wd)))
            self.dec.append(nn.Sequential(*_conv_bn_relu(wd, wd),
                                          *_conv_bn_relu(wd, out)))
        self.head = nn.Conv2d(widths[0], out_channels, 3, padding=1)
        self.num_stages = n
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        factor = 2**(self.num_stages - 1)
        if x.shape[-2] % factor or x.shape[-1] % factor:
            raise ValueError(f'input size {tuple(x.shape[-2:])} must be '
                             f'divisible by {factor}')
        skips = []
        for i, block in enumerate(self.encoder):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = dec(up(x) + skips.pop())
        return self.head(x)


@MODELS.register_module()
class FrequencyRestorationAD(BaseAnomalyDetector):
    """FAIR-style anomaly detection: restore the colour image from the
    Butterworth high-pass of its grayscale version, score the restoration
    error (MSGMS + CIELAB colour term).

    Normalisation: the MSGMS map lies in [0, 1]; for restorations in
    [0, 1], ``|a - a_hat|, |b - b_hat| < 256``; so ``normalize_scores``
    divides by ``1 + color_weight * 2 * 256 ** 2`` and clips at 1 (only a
    raw restoration far outside [0, 1] reaches the clip).

    Args:
        base_channels (int): U-Net width ``w``. Defaults to 128.
        num_stages (int): U-Net stages. Defaults to 5.
        cutoff (float): Butterworth cut-off, cycles per pixel. Defaults to
            30 / 256.
        order (int): Butterworth order. Defaults to 2.
        ssim_weight (float): Weight of ``1 - SSIM``. Defaults to 1.
        synthetic_anomalies (bool): Corrupt training inputs
            (:func:`synthesize_anomalies`). Defaults to True.
        texture_dir (str, optional): DTD texture folder for the Perlin
            anomalies (``dtd/images``: ``<category>/<name>.jpg``;
            :func:`list_textures`). Defaults to None: the training images
            are the anomaly sources (the original's no-extra-data variant).
        rotate_prob (float): Probability of rotating a training image by
            U(-90, 90) degrees. Defaults to 0.3, as the original.
        msgms_scales (int): Scales of MSGMS. Defaults to 2.
        color_weight (float): Weight of the a/b squared error. Defaults to
            0.0003.
        mean_filter_size (int): Side of the mean filter applied to the
            map. Defaults to 21 (256-px inputs).
        smooth_sigma (float): Extra Gaussian smoothing of the shared
            post-processing. Defaults to 0 (the mean filter replaces it).
    """

    def __init__(self,
                 base_channels: int = 128,
                 num_stages: int = 5,
                 cutoff: float = 30.0 / 256.0,
                 order: int = 2,
                 ssim_weight: float = 1.0,
                 synthetic_anomalies: bool = True,
                 texture_dir: Optional[str] = None,
                 rotate_prob: float = 0.3,
                 msgms_scales: int = 2,
                 color_weight: float = 0.0003,
                 mean_filter_size: int = 21,
                 smooth_sigma: float = 0.0,
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
        if mean_filter_size < 1 or mean_filter_size % 2 == 0:
            raise ValueError(f'mean_filter_size must be odd and >= 1, got '
                             f'{mean_filter_size}')
        if not 0.0 <= rotate_prob <= 1.0:
            raise ValueError(f'rotate_prob must be in [0, 1], got '
                             f'{rotate_prob}')
        if texture_dir is not None and not synthetic_anomalies:
            raise ValueError('texture_dir is used only with '
                             'synthetic_anomalies=True')
        # DTD texture paths (not part of the state dict)
        self.textures = (list_textures(texture_dir)
                         if texture_dir is not None else None)
        self.rotate_prob = float(rotate_prob)
        self.restorer = AdditiveSkipUNet(1, 3, base_channels, num_stages)
        self.cutoff = float(cutoff)
        self.order = int(order)
        self.ssim_weight = float(ssim_weight)
        self.synthetic_anomalies = bool(synthetic_anomalies)
        self.msgms_scales = int(msgms_scales)
        self.color_weight = float(color_weight)
        self.mean_filter_size = int(mean_filter_size)

    def high_pass(self, images01: Tensor) -> Tensor:
        """(B, 1, H, W) Butterworth high-pass of the luma of (B, 3, H, W)
        RGB images in [0, 1]."""
        luma = torch.einsum('c,bchw->bhw', images01.new_tensor(LUMA),
                            images01)[:, None]
        return butterworth_high_pass(luma, self.cutoff, self.order)

    def restore(self, images01: Tensor) -> Tensor:
        """Restoration (B, 3, H, W) of RGB images in [0, 1]."""
        return self.restorer(self.high_pass(images01))

    def loss(self, inputs: Tensor,
             data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        """MSE + ``ssim_weight * (1 - SSIM)`` between the restoration of a
        (randomly rotated, synthetically corrupted) input and the clean
        (rotated) image."""
        clean = (inputs.float() + 1.0) * 0.5
        target = clean
        if self.rotate_prob > 0:
            target = random_rotate(clean, self.rotate_prob)
        source = target
        if self.synthetic_anomalies:
            source = synthesize_anomalies(target, textures=self.textures,
                                          sources=clean)
        out = self.restore(source)
        losses = dict(loss_mse=F.mse_loss(out, target))
        if self.ssim_weight > 0:
            losses['loss_ssim'] = self.ssim_weight * (
                1.0 - ssim_map(out, target).mean())
        return losses

    def anomaly_maps(
        self,
        inputs: Tensor,
        data_samples: Optional[List[DetDataSample]] = None
    ) -> Tuple[Tensor, Tensor]:
        """MSGMS + colour map after the mean filter (B, H, W) and its
        maximum per image (B,)."""
        x = (inputs.float() + 1.0) * 0.5
        with torch.no_grad():
            out = self.restore(x)  # raw output, as the original
        maps = msgms_map(out, x, self.msgms_scales)
        if self.color_weight > 0:
            # the original's quirk: its BGR images go into an RGB-to-Lab
            # conversion, so the channels are reversed here
            diff = (rgb_to_lab(x.flip(1)) - rgb_to_lab(out.flip(1)))[:, 1:]
            maps = maps + self.color_weight * (diff**2).sum(dim=1)
        k = self.mean_filter_size
        if k > 1:  # one map at a time: independent of the batch
            kernel = maps.new_full((1, 1, k, k), 1.0 / k**2)
            maps = torch.cat([
                F.conv2d(m[None, None], kernel, padding=k // 2)[0]
                for m in maps
            ])
        return maps, maps.flatten(1).max(dim=1).values

    def normalize_scores(self, scores: Tensor) -> Tensor:
        bound = 1.0 + self.color_weight * 2 * 256.0**2
        return (scores / bound).clamp(0.0, 1.0)
