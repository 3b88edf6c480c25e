# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Colour/geometry augmenters of FAIR's anomaly sources, and the rotation
shared by FAIR-style's synthetic anomalies.

FAIR's training (github.com/liutongkun/FAIR, commit 53452bd,
``data_loaderbhpf.py`` and ``data_loaderbhpfnoDTD.py``; read for facts, not
copied) passes each anomaly source (a DTD texture, or in the
no-extra-data variant a training image) through 3 augmenters drawn
without replacement (random order) from a list of ``imgaug`` 0.4.0
augmenters. ``imgaug`` is not a dependency here: each augmenter is written
with numpy/cv2 from the behaviour ``imgaug`` documents, on ``uint8``
(H, W, 3) arrays. The original reads its sources with ``cv2.imread``, so
its arrays are BGR while ``imgaug``'s colour-space augmenters assume RGB;
:func:`augment_source` takes BGR arrays so that this quirk is followed.

Original (``iaa.``) -> here:

* ``GammaContrast((0.5, 2.0), per_channel=True)`` -> :func:`gamma_contrast`,
  one gamma per channel;
* ``MultiplyAndAddToBrightness(mul=(0.8, 1.2), add=(-30, 30))`` ->
  :func:`multiply_add_brightness`: the brightness channel (Y / V / L / L /
  L / Y) of YCrCb, HSV, HLS, Lab, Luv or YUV (one at random), times ``mul``
  and plus an integer ``add``, in random order;
* ``pillike.EnhanceSharpness()`` -> :func:`enhance_sharpness`, factor
  U(0, 2);
* ``AddToHueAndSaturation((-50, 50), per_channel=True)`` ->
  :func:`add_hue_saturation`, integer hue and saturation offsets drawn
  separately;
* ``Solarize(0.5, threshold=(32, 128))`` -> :func:`solarize` with
  probability 1/2, threshold U(32, 128);
* ``Posterize()`` -> :func:`posterize`, 1..8 bits;
* ``Invert()`` -> :func:`invert` (always: imgaug 0.4.0's ``p=1``);
* ``pillike.Autocontrast()`` -> :func:`autocontrast`, cut-off 0..20 %;
* ``pillike.Equalize()`` -> :func:`equalize`;
* ``Affine(rotate=(-45, 45))`` -> :func:`rotate_uint8`, U(-45, 45) degrees;
* no-DTD list only: ``WithColorspace(HSV, WithChannels(0, Add((0, 90))))``
  -> :func:`add_hue_clipped` (+ 0..90 on OpenCV's hue, clipped at 255, not
  wrapped) and ``Dropout2d(p=0.5)`` -> :func:`dropout_channels` (each
  channel zeroed with probability 1/2, at least one kept).
"""
from typing import Callable, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

Generator = Optional[torch.Generator]


def rotate(img: Tensor, degrees: float,
           center: Optional[Tuple[float, float]] = None) -> Tensor:
    """Rotate (..., H, W) about ``center`` (x, y pixels; default the image
    centre ``((W - 1) / 2, (H - 1) / 2)``), bilinear, zero fill.

    Positive angles turn the x axis towards the y axis (clockwise on screen,
    y pointing down), as ``cv2.getRotationMatrix2D(center, -degrees, 1)``.
    """
    h, w = img.shape[-2:]
    cx, cy = ((w - 1) / 2.0, (h - 1) / 2.0) if center is None else center
    rad = np.deg2rad(float(degrees))
    cos, sin = float(np.cos(rad)), float(np.sin(rad))
    flat = img.reshape(1, -1, h, w).float()
    # inverse map (output -> input pixels), in grid_sample's normalised
    # coordinates (align_corners=True: pixel = (norm + 1) * (size - 1) / 2)
    xs = torch.arange(w, dtype=torch.float32, device=img.device) - cx
    ys = torch.arange(h, dtype=torch.float32, device=img.device) - cy
    sx, sy = max(w - 1, 1) / 2.0, max(h - 1, 1) / 2.0
    src_x = ((cos * xs[None, :] + sin * ys[:, None]) + cx) / sx - 1.0
    src_y = ((cos * ys[:, None] - sin * xs[None, :]) + cy) / sy - 1.0
    grid = torch.stack([src_x, src_y], dim=-1)[None]
    out = F.grid_sample(flat, grid, mode='bilinear', padding_mode='zeros',
                        align_corners=True)
    return out.to(img.dtype).reshape(img.shape)


# ------------------------------------------------------------ deterministic
def _lut(img: np.ndarray, table: np.ndarray) -> np.ndarray:
    return np.clip(table, 0, 255).astype(np.uint8)[img]


def gamma_contrast(img: np.ndarray, gammas: Sequence[float]) -> np.ndarray:
    """``floor(255 * (v / 255) ** gamma_c)`` per channel ``c``."""
    v = np.arange(256, dtype=np.float64) / 255.0
    out = np.empty_like(img)
    for ch, gamma in enumerate(gammas):
        out[..., ch] = _lut(img[..., ch], np.floor(255.0 * v**gamma))
    return out


#: Colour spaces of ``MultiplyAndAddToBrightness`` and the index of their
#: brightness channel.
BRIGHTNESS_SPACES = {
    'YCrCb': (cv2.COLOR_RGB2YCrCb, cv2.COLOR_YCrCb2RGB, 0),
    'HSV': (cv2.COLOR_RGB2HSV, cv2.COLOR_HSV2RGB, 2),
    'HLS': (cv2.COLOR_RGB2HLS, cv2.COLOR_HLS2RGB, 1),
    'Lab': (cv2.COLOR_RGB2Lab, cv2.COLOR_Lab2RGB, 0),
    'Luv': (cv2.COLOR_RGB2Luv, cv2.COLOR_Luv2RGB, 0),
    'YUV': (cv2.COLOR_RGB2YUV, cv2.COLOR_YUV2RGB, 0),
}


def multiply_add_brightness(img: np.ndarray, space: str, mul: float,
                            add: int, add_first: bool) -> np.ndarray:
    """Brightness channel of ``space`` times ``mul`` (rounded) and plus
    ``add``, each step clipped to [0, 255]; the image is taken as RGB."""
    to, back, ch = BRIGHTNESS_SPACES[space]
    conv = cv2.cvtColor(np.ascontiguousarray(img), to)
    chan = conv[..., ch].astype(np.float64)

    def multiply(x):
        return np.clip(np.round(x * mul), 0, 255)

    def plus(x):
        return np.clip(x + add, 0, 255)

    chan = multiply(plus(chan)) if add_first else plus(multiply(chan))
    conv[..., ch] = chan.astype(np.uint8)
    return cv2.cvtColor(conv, back)


def _smooth_3x3(img: np.ndarray) -> np.ndarray:
    """PIL's SMOOTH kernel ``[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13``;
    border pixels keep their value (as PIL's filter)."""
    x = img.astype(np.float64)
    acc = 4.0 * x[1:-1, 1:-1]
    for dy in range(3):
        for dx in range(3):
            acc = acc + x[dy:dy + x.shape[0] - 2, dx:dx + x.shape[1] - 2]
    out = x.copy()
    out[1:-1, 1:-1] = acc / 13.0
    return out


def enhance_sharpness(img: np.ndarray, factor: float) -> np.ndarray:
    """``PIL.ImageEnhance.Sharpness``: ``smooth + factor * (img -
    smooth)``, clipped and rounded."""
    if min(img.shape[:2]) < 3:
        return img.copy()
    smooth = np.round(_smooth_3x3(img))
    out = smooth + factor * (img.astype(np.float64) - smooth)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def add_hue_saturation(img: np.ndarray, hue: int,
                       saturation: int) -> np.ndarray:
    """RGB -> OpenCV HSV; hue ``+ trunc(hue * 180 / 255)`` modulo 180,
    saturation ``+ saturation`` clipped; back to RGB."""
    hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2HSV)
    h = hsv[..., 0].astype(np.int64) + int(hue * 180.0 / 255.0)
    s = hsv[..., 1].astype(np.int64) + int(saturation)
    hsv[..., 0] = np.mod(h, 180).astype(np.uint8)
    hsv[..., 1] = np.clip(s, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def add_hue_clipped(img: np.ndarray, value: int) -> np.ndarray:
    """RGB -> OpenCV HSV (hue 0..179), ``+ value`` on the hue clipped at
    255 (``uint8`` ``Add``; OpenCV wraps hues >= 180 back), back to RGB."""
    hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = np.clip(hsv[..., 0].astype(np.int64) + value, 0,
                          255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def solarize(img: np.ndarray, threshold: float) -> np.ndarray:
    """Values ``>= threshold`` become ``255 - v``."""
    return np.where(img >= threshold, 255 - img, img).astype(np.uint8)


def posterize(img: np.ndarray, bits: int) -> np.ndarray:
    """Keep the ``bits`` most significant bits."""
    return (img & np.uint8((0xFF << (8 - bits)) & 0xFF)).astype(np.uint8)


def invert(img: np.ndarray) -> np.ndarray:
    """``255 - v``."""
    return (255 - img).astype(np.uint8)


def autocontrast(img: np.ndarray, cutoff: int) -> np.ndarray:
    """``PIL.ImageOps.autocontrast``: per channel, drop ``cutoff`` % of the
    pixels (``n * cutoff // 100``) at each end of the histogram, stretch
    the remaining range ``[lo, hi]`` to [0, 255] (truncated)."""
    out = np.empty_like(img)
    for ch in range(img.shape[-1]):
        chan = img[..., ch]
        hist = np.bincount(chan.ravel(), minlength=256)
        cut = hist.sum() * cutoff // 100
        lo = int(np.argmax(np.cumsum(hist) > cut))
        hi = 255 - int(np.argmax(np.cumsum(hist[::-1]) > cut))
        if hi <= lo:
            out[..., ch] = chan
            continue
        scale = 255.0 / (hi - lo)
        table = np.trunc(np.arange(256) * scale - lo * scale)
        out[..., ch] = _lut(chan, table)
    return out


def equalize(img: np.ndarray) -> np.ndarray:
    """``PIL.ImageOps.equalize`` per channel: ``step = (n - count of the
    highest occurring value) // 255``; ``v -> (step // 2 + #pixels below
    v) // step``."""
    out = np.empty_like(img)
    for ch in range(img.shape[-1]):
        chan = img[..., ch]
        hist = np.bincount(chan.ravel(), minlength=256)
        used = hist[hist > 0]
        step = (hist.sum() - used[-1]) // 255 if len(used) > 1 else 0
        if not step:
            out[..., ch] = chan
            continue
        below = np.concatenate([[0], np.cumsum(hist)[:-1]])
        out[..., ch] = _lut(chan, (step // 2 + below) // step)
    return out


def rotate_uint8(img: np.ndarray, degrees: float) -> np.ndarray:
    """:func:`rotate` of a ``uint8`` (H, W, C) array, rounded."""
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    out = rotate(t.float(), degrees).round().clamp(0, 255)
    return out.permute(1, 2, 0).to(torch.uint8).numpy()


def dropout_channels(img: np.ndarray, drop: Sequence[bool]) -> np.ndarray:
    """Channels with ``drop`` set become 0."""
    out = img.copy()
    out[..., np.asarray(drop, bool)] = 0
    return out


# ------------------------------------------------------------ random draws
def draw_uniform(g: Generator, lo: float, hi: float,
                 n: int = 1) -> np.ndarray:
    """``n`` draws of U(lo, hi) (float64) from ``g``."""
    return (lo + (hi - lo) * torch.rand(n, generator=g,
                                        dtype=torch.float64)).numpy()


def _scalar(g: Generator, lo: float, hi: float) -> float:
    return float(draw_uniform(g, lo, hi)[0])


def _integer(g: Generator, lo: int, hi: int) -> int:
    """Uniform integer in ``[lo, hi]``."""
    return int(torch.randint(lo, hi + 1, (1, ), generator=g))


def _random_brightness(img, g):
    spaces = list(BRIGHTNESS_SPACES)
    return multiply_add_brightness(
        img, spaces[_integer(g, 0, len(spaces) - 1)],
        _scalar(g, 0.8, 1.2), _integer(g, -30, 30),
        bool(_integer(g, 0, 1)))


def _random_solarize(img, g):
    if _scalar(g, 0.0, 1.0) >= 0.5:
        return img
    return solarize(img, _scalar(g, 32.0, 128.0))


def _random_dropout(img, g):
    drop = torch.rand(img.shape[-1], generator=g).numpy() < 0.5
    if drop.all():  # keep at least one channel
        drop[_integer(g, 0, len(drop) - 1)] = False
    return dropout_channels(img, drop)


#: name -> augmenter ``(uint8 (H, W, 3), generator) -> uint8 (H, W, 3)``.
AUGMENTERS: Dict[str, Callable] = {
    'gamma_contrast':
    lambda img, g: gamma_contrast(img, draw_uniform(g, 0.5, 2.0, 3)),
    'multiply_add_brightness': _random_brightness,
    'enhance_sharpness':
    lambda img, g: enhance_sharpness(img, _scalar(g, 0.0, 2.0)),
    'add_hue_saturation':
    lambda img, g: add_hue_saturation(img, _integer(g, -50, 50),
                                      _integer(g, -50, 50)),
    'solarize': _random_solarize,
    'posterize': lambda img, g: posterize(img, _integer(g, 1, 8)),
    'invert': lambda img, g: invert(img),
    'autocontrast': lambda img, g: autocontrast(img, _integer(g, 0, 20)),
    'equalize': lambda img, g: equalize(img),
    'rotate':
    lambda img, g: rotate_uint8(img, _scalar(g, -45.0, 45.0)),
    'add_hue_clipped': lambda img, g: add_hue_clipped(img, _integer(g, 0, 90)),
    'dropout_channels': _random_dropout,
}

#: The list of ``data_loaderbhpf.py`` (DTD textures as sources).
TEXTURE_AUGMENTERS = ('gamma_contrast', 'multiply_add_brightness',
                      'enhance_sharpness', 'add_hue_saturation', 'solarize',
                      'posterize', 'invert', 'autocontrast', 'equalize',
                      'rotate')
#: The list of ``data_loaderbhpfnoDTD.py`` (training images as sources).
SELF_AUGMENTERS = ('gamma_contrast', 'add_hue_clipped', 'dropout_channels',
                   'multiply_add_brightness', 'enhance_sharpness',
                   'add_hue_saturation', 'solarize', 'posterize', 'invert',
                   'autocontrast', 'equalize', 'rotate')


def augment_source(img_bgr: np.ndarray, names: Sequence[str],
                   generator: Generator = None,
                   num: int = 3) -> np.ndarray:
    """Apply ``num`` augmenters of ``names``, drawn without replacement in
    random order, to a ``uint8`` (H, W, 3) BGR array (the colour-space
    augmenters read it as RGB, as the original's do)."""
    order = torch.randperm(len(names), generator=generator)[:num]
    out = img_bgr
    for i in order.tolist():
        out = AUGMENTERS[names[i]](out, generator)
    return out
