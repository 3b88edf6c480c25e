# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Synthetic anomalies for restoration-based training (FAIR-style).

FAIR's official training (github.com/liutongkun/FAIR, ``data_loaderbhpf*.py``;
read for facts, not copied) restores the *clean* normal image from the
high-pass component of a corrupted copy: per image, with probability 1/2 a
cut-paste branch and otherwise a Perlin branch (DRAEM's), each of which
leaves the image clean half of the time (so 1/4 cut-paste, 1/4 Perlin,
1/2 clean).

Written here from that description:

* :func:`cut_paste`: a rectangle (start uniform in the image, extent 80-90 %
  of the image side, truncated at the border) rotated about its top-left
  corner by a whole number of radians in [-6, 5] (zero fill) and pasted at a
  uniformly drawn position where it fits.
* :func:`perlin_noise` / :func:`perlin_blend`: a 2-D Perlin noise with
  ``2**a x 2**b`` cells (``a, b`` uniform in 0..5, fewer where the image is
  too small), thresholded at 0.5, blended with a source image:
  ``x (1 - m) + (1 - beta) s m + beta x m``, ``beta ~ U(0, 0.8)``.
  The original also rotates the noise by up to 90 degrees and draws the
  source from DTD textures (or the training images) with 3 random
  ``imgaug`` colour/geometry augmenters; here the source is another image
  of the batch, intensity-inverted, and the noise is not rotated.
"""
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def perlin_noise(shape: Tuple[int, int], res: Tuple[int, int],
                 generator: torch.Generator = None) -> Tensor:
    """2-D Perlin gradient noise (H, W) in about [-1, 1].

    Args:
        shape: (H, W), each divisible by the matching ``res``.
        res: Number of noise cells (periods) along (H, W).
        generator: Optional RNG.
    """
    h, w = shape
    ry, rx = res
    if h % ry or w % rx:
        raise ValueError(f'shape {shape} not divisible by res {res}')
    angles = 2 * math.pi * torch.rand(ry + 1, rx + 1, generator=generator)
    grads = torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)
    ys = torch.arange(h, dtype=torch.float32) * ry / h
    xs = torch.arange(w, dtype=torch.float32) * rx / w
    yi, xi = ys.long(), xs.long()
    fy, fx = (ys - yi)[:, None], (xs - xi)[None, :]

    def dot(dy: int, dx: int) -> Tensor:
        g = grads[(yi + dy)[:, None], (xi + dx)[None, :]]  # (H, W, 2)
        return g[..., 0] * (fy - dy) + g[..., 1] * (fx - dx)

    def fade(t: Tensor) -> Tensor:
        return 6 * t**5 - 15 * t**4 + 10 * t**3

    uy, ux = fade(fy), fade(fx)
    top = dot(0, 0) * (1 - ux) + dot(0, 1) * ux
    bottom = dot(1, 0) * (1 - ux) + dot(1, 1) * ux
    return math.sqrt(2) * (top * (1 - uy) + bottom * uy)


def _cells(size: int, generator: torch.Generator) -> int:
    """``2**a``, ``a`` uniform in 0..5, lowered until it divides ``size``."""
    res = 2**int(torch.randint(0, 6, (1, ), generator=generator))
    while size % res:
        res //= 2
    return res


def perlin_blend(img: Tensor, source: Tensor,
                 generator: torch.Generator = None) -> Tuple[Tensor, Tensor]:
    """Blend ``source`` into ``img`` (C, H, W) inside a thresholded Perlin
    mask; returns the image and the mask (1, H, W)."""
    h, w = img.shape[-2:]
    noise = perlin_noise((h, w), (_cells(h, generator), _cells(w, generator)),
                         generator)
    mask = (noise > 0.5).to(img.dtype)[None]
    beta = 0.8 * float(torch.rand(1, generator=generator))
    out = img * (1 - mask) + (1 - beta) * source * mask + beta * img * mask
    return out, mask


def cut_paste(img: Tensor,
              generator: torch.Generator = None) -> Tuple[Tensor, Tensor]:
    """Cut a rectangle of ``img`` (C, H, W), rotate it and paste it back
    elsewhere; returns the image and the pasted region (1, H, W)."""
    _, h, w = img.shape

    def randrange(lo: int, hi: int) -> int:
        return lo if hi <= lo else int(
            torch.randint(lo, hi, (1, ), generator=generator))

    top, left = randrange(0, h), randrange(0, w)
    ph = randrange(round(0.8 * h), round(0.9 * h))
    pw = randrange(round(0.8 * h), round(0.9 * h))  # as the original: h
    patch = img[:, top:top + ph, left:left + pw]
    ph, pw = patch.shape[-2:]
    ph, pw = ph - ph % 2, pw - pw % 2
    mask = img.new_zeros(1, h, w)
    if ph < 2 or pw < 2 or ph > h - 2 or pw > w - 2:
        return img, mask
    patch = patch[:, :ph, :pw]
    angle = float(randrange(-6, 6))  # whole radians, as the original
    # rotation about the patch's top-left corner (zero fill), expressed in
    # affine_grid's normalised [-1, 1] coordinates
    cos, sin = math.cos(angle), math.sin(angle)
    sx, sy = (pw - 1) / 2.0, (ph - 1) / 2.0  # pixel = (norm + 1) * s
    # inverse map: src = R^-1 dst (pixels, origin top-left)
    ax = torch.tensor([[cos, sin], [-sin, cos]])
    theta = torch.zeros(1, 2, 3)
    scale = torch.tensor([sx, sy])
    theta[0, :, :2] = ax * scale[None, :] / scale[:, None]
    theta[0, :, 2] = (ax @ scale - scale) / scale
    grid = F.affine_grid(theta, (1, img.shape[0], ph, pw),
                         align_corners=True).to(img)
    rotated = F.grid_sample(patch[None], grid, mode='bilinear',
                            padding_mode='zeros', align_corners=True)[0]
    y0, x0 = randrange(1, h - ph - 1), randrange(1, w - pw - 1)
    out = img.clone()
    out[:, y0:y0 + ph, x0:x0 + pw] = rotated
    mask[:, y0:y0 + ph, x0:x0 + pw] = 1
    return out, mask


def synthesize_anomalies(images: Tensor,
                         generator: torch.Generator = None) -> Tensor:
    """Corrupt a batch (B, C, H, W) of [0, 1] images as FAIR's training
    does: per image 1/4 cut-paste, 1/4 Perlin blend with the next image of
    the batch (intensity-inverted), 1/2 unchanged."""
    out = []
    b = images.shape[0]
    for i, img in enumerate(images):
        branch = float(torch.rand(1, generator=generator))
        keep = float(torch.rand(1, generator=generator)) > 0.5
        if keep:
            out.append(img)
        elif branch > 0.5:
            out.append(cut_paste(img, generator)[0])
        else:
            source = 1.0 - images[(i + 1) % b]
            out.append(perlin_blend(img, source, generator)[0])
    return torch.stack(out)
