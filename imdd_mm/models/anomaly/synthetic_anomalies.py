# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Synthetic anomalies for restoration-based training (FAIR-style).

FAIR's official training (github.com/liutongkun/FAIR, commit 53452bd,
``data_loaderbhpf.py`` / ``data_loaderbhpfnoDTD.py``, ``CutpasteAugment.py``;
read for facts, not copied) restores the *clean* normal image from the
high-pass component of a corrupted copy. Per training image:

1. with probability 0.3 the image (input and target) is rotated by
   U(-90, 90) degrees about its centre, bilinear, black corners
   (:func:`random_rotate`);
2. with probability 1/2 a cut-paste branch, otherwise a Perlin branch
   (DRAEM's), each of which leaves the image clean half of the time (so
   1/4 cut-paste, 1/4 Perlin, 1/2 clean).

Written here from that description:

* :func:`cut_paste`: a rectangle (start uniform in the image, extent 80-90 %
  of the image side, truncated at the border) rotated about its top-left
  corner by a whole number of radians in [-6, 5] (zero fill) and pasted at a
  uniformly drawn position where it fits.
* :func:`perlin_mask`: a 2-D Perlin noise with ``2**a x 2**b`` cells
  (``a, b`` uniform in 0..5, fewer where the image is too small), rotated by
  U(-90, 90) degrees about the centre (zero fill), thresholded at 0.5.
* :func:`perlin_blend`: ``x (1 - m) + (1 - beta) s m + beta x m``,
  ``beta ~ U(0, 0.8)``, with the anomaly source ``s``: a random texture of a
  user-supplied DTD folder (:func:`list_textures`) through 3 of
  :data:`.source_augmenters.TEXTURE_AUGMENTERS`, or (no extra data) a random
  training image through 3 of :data:`.source_augmenters.SELF_AUGMENTERS`.
  The original draws that training image from the whole training set; here
  it is drawn from the batch (before the rotation of step 1, as the
  original reads it afresh from disk).
"""
import math
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch import Tensor

from .source_augmenters import (SELF_AUGMENTERS, TEXTURE_AUGMENTERS,
                                augment_source, draw_uniform, rotate)

#: Rotation range (degrees) of the training images and of the Perlin noise.
MAX_ROTATION = 90.0


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
        g = grads.index_select(0, yi + dy).index_select(1, xi + dx)
        return g[..., 0].contiguous() * (fy - dy) + g[..., 1].contiguous() * (
            fx - dx)

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


def _uniform(generator: Optional[torch.Generator], lo: float,
             hi: float) -> float:
    return float(draw_uniform(generator, lo, hi)[0])


def perlin_mask(shape: Tuple[int, int],
                generator: torch.Generator = None) -> Tensor:
    """Binary Perlin mask (H, W): noise rotated by U(-90, 90) degrees about
    the centre (zero outside), ``> 0.5``."""
    h, w = shape
    noise = perlin_noise((h, w), (_cells(h, generator), _cells(w, generator)),
                         generator)
    noise = rotate(noise, _uniform(generator, -MAX_ROTATION, MAX_ROTATION))
    return (noise > 0.5).float()


def perlin_blend(img: Tensor, source: Tensor,
                 generator: torch.Generator = None) -> Tuple[Tensor, Tensor]:
    """Blend ``source`` into ``img`` (C, H, W) inside a :func:`perlin_mask`;
    returns the image and the mask (1, H, W)."""
    mask = perlin_mask(tuple(img.shape[-2:]), generator).to(img)[None]
    beta = _uniform(generator, 0.0, 0.8)
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
    rotated = rotate(patch, math.degrees(angle), center=(0.0, 0.0))
    y0, x0 = randrange(1, h - ph - 1), randrange(1, w - pw - 1)
    out = img.clone()
    out[:, y0:y0 + ph, x0:x0 + pw] = rotated
    mask[:, y0:y0 + ph, x0:x0 + pw] = 1
    return out, mask


def random_rotate(images: Tensor, prob: float = 0.3,
                  generator: torch.Generator = None) -> Tensor:
    """Rotate each image of (B, C, H, W) with probability ``prob`` by
    U(-90, 90) degrees about its centre (bilinear, zero fill)."""
    out = []
    for img in images:
        if float(torch.rand(1, generator=generator)) < prob:
            img = rotate(img,
                         _uniform(generator, -MAX_ROTATION, MAX_ROTATION))
        out.append(img)
    return torch.stack(out)


def list_textures(texture_dir: str) -> List[str]:
    """The anomaly-source textures of a DTD folder: ``texture_dir/*/*.jpg``
    (sorted), as the original globs its ``anomaly_source_path``.

    DTD (https://www.robots.ox.ac.uk/~vgg/data/dtd/, ``dtd-r1.0.1.tar.gz``)
    unpacks to ``dtd/images/<category>/<name>.jpg``: pass ``dtd/images``.

    Raises:
        FileNotFoundError: ``texture_dir`` is not a folder or holds no
            ``<category>/<name>.jpg`` image.
    """
    root = Path(texture_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f'texture_dir {str(root)!r} is not a folder; download DTD '
            '(https://www.robots.ox.ac.uk/~vgg/data/dtd/, dtd-r1.0.1.tar.gz) '
            'and pass its dtd/images folder')
    paths = sorted(str(p) for p in root.glob('*/*.jpg'))
    if not paths:
        raise FileNotFoundError(
            f'texture_dir {str(root)!r} holds no <category>/<name>.jpg '
            'image (DTD layout: pass the dtd/images folder)')
    return paths


def load_texture(path: str, size: Tuple[int, int]) -> np.ndarray:
    """``uint8`` (H, W, 3) BGR texture resized (bilinear) to ``size`` =
    (H, W)."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f'cannot read texture image {path!r}')
    return cv2.resize(img, (size[1], size[0]))


def _to_bgr_uint8(img: Tensor) -> np.ndarray:
    """RGB (3, H, W) in [0, 1] -> ``uint8`` (H, W, 3) BGR."""
    arr = (img.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return np.ascontiguousarray(arr.flip(0).permute(1, 2, 0).cpu().numpy())


def _from_bgr_uint8(arr: np.ndarray, like: Tensor) -> Tensor:
    rgb = torch.from_numpy(np.ascontiguousarray(arr[..., ::-1]))
    return (rgb.permute(2, 0, 1).to(like.device, like.dtype) / 255.0)


def synthesize_anomalies(images: Tensor,
                         generator: torch.Generator = None,
                         textures: Optional[Sequence[str]] = None,
                         sources: Optional[Tensor] = None) -> Tensor:
    """Corrupt a batch (B, 3, H, W) of RGB [0, 1] images as FAIR's training
    does: per image 1/4 cut-paste, 1/4 Perlin blend, 1/2 unchanged.

    Args:
        images: The (possibly rotated) training images.
        generator: Optional RNG (default: torch's global one).
        textures: Paths of DTD textures (:func:`list_textures`); the Perlin
            source is then a random texture through 3 random
            ``TEXTURE_AUGMENTERS``.
        sources: Without ``textures``: (B, 3, H, W) images the Perlin source
            is drawn from (default ``images``), through 3 random
            ``SELF_AUGMENTERS``.
    """
    sources = images if sources is None else sources
    size = tuple(images.shape[-2:])
    out = []
    for img in images:
        cut = float(torch.rand(1, generator=generator)) > 0.5
        keep = float(torch.rand(1, generator=generator)) > 0.5
        if keep:
            out.append(img)
        elif cut:
            out.append(cut_paste(img, generator)[0])
        else:
            if textures:
                k = int(torch.randint(len(textures), (1, ),
                                      generator=generator))
                src = load_texture(textures[k], size)
                names = TEXTURE_AUGMENTERS
            else:
                k = int(torch.randint(len(sources), (1, ),
                                      generator=generator))
                src = _to_bgr_uint8(sources[k])
                names = SELF_AUGMENTERS
            src = augment_source(src, names, generator)
            out.append(
                perlin_blend(img, _from_bgr_uint8(src, img), generator)[0])
    return torch.stack(out)
