# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Stage-1 (diffusion pretraining) image augmentations of Table 8.

Table 8 of the paper lists, for Stage 1: random horizontal and vertical
flips (p = 0.5 each), random rotation (+-15 degrees), colour jitter
"(BSCH) 0.2, 0.2, 0.1, 0.05" and a random resized crop with
``scale=[0.8, 1.0]``. Flips reuse mmdet's ``RandomFlip`` (one instance per
direction, so both flips are drawn independently); the other three are
here because neither mmcv nor mmdet has them in this form:

- :class:`RandomResizedCropImage` - torchvision-style random resized crop to
  a fixed output size (the training resolution, 512 by default).
- :class:`RandomRotateImage` - rotation by an angle drawn uniformly from
  ``[-max_angle, max_angle]``; the corners are filled by reflection by
  default so the generator never learns black triangles.
- :class:`ColorJitterBSCH` - brightness / saturation / contrast / hue
  jitter in random order. The keyword names follow the paper's BSCH order,
  i.e. ``brightness=0.2, saturation=0.2, contrast=0.1, hue=0.05``.

All transforms work on ``results['img']`` (H, W, 3) uint8 BGR as loaded by
``LoadImageFromFile`` and draw their randomness from ``numpy.random`` (seeded
per worker by mmengine), so a run is reproducible for a fixed seed. They are
image-only: Stage 1 has no boxes or masks to keep in sync.
"""
import math
from typing import Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

_INTERP = {
    'nearest': cv2.INTER_NEAREST,
    'bilinear': cv2.INTER_LINEAR,
    'bicubic': cv2.INTER_CUBIC,
    'area': cv2.INTER_AREA,
    'lanczos': cv2.INTER_LANCZOS4,
}
_BORDER = {
    'reflect': cv2.BORDER_REFLECT_101,
    'replicate': cv2.BORDER_REPLICATE,
    'constant': cv2.BORDER_CONSTANT,
}


def _pair(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``size`` as ``(h, w)``."""
    if isinstance(size, int):
        return size, size
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f'size must be an int or (h, w), got {size}')
    return size


@TRANSFORMS.register_module()
class RandomResizedCropImage(BaseTransform):
    """Crop a random region of the image and resize it to ``size``.

    The crop covers a fraction of the image area drawn uniformly from
    ``scale`` with an aspect ratio drawn log-uniformly from ``ratio``
    (torchvision's ``RandomResizedCrop`` rule: up to 10 attempts, then a
    centre crop with the ratio clamped into ``ratio``).

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``.
    Added keys: ``crop_bbox`` (x1, y1, x2, y2 in the input image).

    Args:
        size (int | tuple[int, int]): Output ``(h, w)``; an int gives a
            square. Defaults to 512.
        scale (tuple[float, float]): Range of the crop's area fraction.
            Defaults to (0.8, 1.0) (Table 8).
        ratio (tuple[float, float]): Range of the crop's aspect ratio
            (w / h). Defaults to (3/4, 4/3).
        interpolation (str): cv2 interpolation for the resize.
            Defaults to 'bilinear'.
    """

    def __init__(self,
                 size: Union[int, Sequence[int]] = 512,
                 scale: Tuple[float, float] = (0.8, 1.0),
                 ratio: Tuple[float, float] = (3. / 4., 4. / 3.),
                 interpolation: str = 'bilinear') -> None:
        self.size = _pair(size)
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f'scale must satisfy 0 < lo <= hi <= 1, '
                             f'got {scale}')
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f'ratio must satisfy 0 < lo <= hi, got {ratio}')
        if interpolation not in _INTERP:
            raise ValueError(f'interpolation must be one of '
                             f'{sorted(_INTERP)}, got {interpolation!r}')
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.interpolation = interpolation

    def _get_crop(self, h: int, w: int) -> Tuple[int, int, int, int]:
        """Return ``(top, left, crop_h, crop_w)``."""
        area = h * w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * np.random.uniform(*self.scale)
            aspect = math.exp(np.random.uniform(*log_ratio))
            cw = int(round(math.sqrt(target_area * aspect)))
            ch = int(round(math.sqrt(target_area / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                top = np.random.randint(0, h - ch + 1)
                left = np.random.randint(0, w - cw + 1)
                return top, left, ch, cw
        # fallback: central crop with the aspect ratio clamped into range
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            cw, ch = w, int(round(w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            ch, cw = h, int(round(h * self.ratio[1]))
        else:
            cw, ch = w, h
        ch, cw = max(1, min(ch, h)), max(1, min(cw, w))
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        top, left, ch, cw = self._get_crop(h, w)
        crop = img[top:top + ch, left:left + cw]
        out_h, out_w = self.size
        img = cv2.resize(
            crop, (out_w, out_h), interpolation=_INTERP[self.interpolation])
        if img.ndim == 2:
            img = img[..., None]
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['crop_bbox'] = np.array([left, top, left + cw, top + ch],
                                        dtype=np.float32)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, '
                f'scale={self.scale}, ratio={self.ratio}, '
                f'interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class RandomRotateImage(BaseTransform):
    """Rotate the image about its centre by a random angle.

    Required keys: ``img``. Modified keys: ``img``. Added keys:
    ``rotate_angle`` (degrees, counter-clockwise).

    Args:
        max_angle (float): Angles are drawn uniformly from
            ``[-max_angle, max_angle]`` degrees. Defaults to 15 (Table 8).
        prob (float): Probability of rotating at all. Defaults to 1.0.
        border_mode (str): 'reflect' (default), 'replicate' or 'constant'.
        border_value (int | tuple): Fill value for ``'constant'``.
            Defaults to 0.
        interpolation (str): cv2 interpolation. Defaults to 'bilinear'.
    """

    def __init__(self,
                 max_angle: float = 15.,
                 prob: float = 1.0,
                 border_mode: str = 'reflect',
                 border_value: Union[int, Tuple[int, ...]] = 0,
                 interpolation: str = 'bilinear') -> None:
        if max_angle < 0:
            raise ValueError(f'max_angle must be >= 0, got {max_angle}')
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        if border_mode not in _BORDER:
            raise ValueError(f'border_mode must be one of {sorted(_BORDER)}, '
                             f'got {border_mode!r}')
        if interpolation not in _INTERP:
            raise ValueError(f'interpolation must be one of '
                             f'{sorted(_INTERP)}, got {interpolation!r}')
        self.max_angle = float(max_angle)
        self.prob = prob
        self.border_mode = border_mode
        self.border_value = border_value
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            results['rotate_angle'] = 0.
            return results
        angle = float(np.random.uniform(-self.max_angle, self.max_angle))
        img = results['img']
        h, w = img.shape[:2]
        matrix = cv2.getRotationMatrix2D(((w - 1) * 0.5, (h - 1) * 0.5),
                                         angle, 1.0)
        value = self.border_value
        if isinstance(value, (int, float)):
            value = (value, ) * 3
        out = cv2.warpAffine(
            img,
            matrix, (w, h),
            flags=_INTERP[self.interpolation],
            borderMode=_BORDER[self.border_mode],
            borderValue=value)
        if out.ndim == 2:
            out = out[..., None]
        results['img'] = out
        results['rotate_angle'] = angle
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(max_angle={self.max_angle}, '
                f'prob={self.prob}, border_mode={self.border_mode!r})')


@TRANSFORMS.register_module()
class ColorJitterBSCH(BaseTransform):
    """Random brightness, saturation, contrast and hue (torchvision rule).

    Each enabled factor is applied once, in a random order: brightness,
    contrast and saturation multiply by a factor drawn from
    ``[1 - x, 1 + x]`` (contrast and saturation blend with the grey mean
    and grey image, as torchvision does); hue rotates the HSV hue by a
    fraction of the circle drawn from ``[-hue, hue]``. Grey-content images
    are unchanged by saturation and hue.

    Required keys: ``img`` (uint8 BGR). Modified keys: ``img``.

    Args:
        brightness (float): Defaults to 0.2 (Table 8, "B").
        saturation (float): Defaults to 0.2 (Table 8, "S").
        contrast (float): Defaults to 0.1 (Table 8, "C").
        hue (float): In [0, 0.5]. Defaults to 0.05 (Table 8, "H").
        prob (float): Probability of jittering at all. Defaults to 1.0.
    """

    def __init__(self,
                 brightness: float = 0.2,
                 saturation: float = 0.2,
                 contrast: float = 0.1,
                 hue: float = 0.05,
                 prob: float = 1.0) -> None:
        for name, val in (('brightness', brightness),
                          ('saturation', saturation), ('contrast', contrast)):
            if not 0 <= val < 1:
                raise ValueError(f'{name} must be in [0, 1), got {val}')
        if not 0 <= hue <= 0.5:
            raise ValueError(f'hue must be in [0, 0.5], got {hue}')
        self.brightness = brightness
        self.saturation = saturation
        self.contrast = contrast
        self.hue = hue
        self.prob = prob

    @staticmethod
    def _gray(img: np.ndarray) -> np.ndarray:
        """(H, W, 1) float32 luma of a BGR float image."""
        return (0.114 * img[..., 0:1] + 0.587 * img[..., 1:2] +
                0.299 * img[..., 2:3])

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        img = results['img']
        single = img.ndim == 2 or img.shape[-1] == 1
        out = img.astype(np.float32)
        if out.ndim == 2:
            out = out[..., None]
        if out.shape[-1] == 1:
            out = np.repeat(out, 3, axis=-1)
        ops = np.random.permutation(4)
        for op in ops:
            if op == 0 and self.brightness > 0:
                f = np.random.uniform(1 - self.brightness,
                                      1 + self.brightness)
                out = out * f
            elif op == 1 and self.contrast > 0:
                f = np.random.uniform(1 - self.contrast, 1 + self.contrast)
                mean = self._gray(out).mean()
                out = (out - mean) * f + mean
            elif op == 2 and self.saturation > 0:
                f = np.random.uniform(1 - self.saturation,
                                      1 + self.saturation)
                gray = self._gray(out)
                out = (out - gray) * f + gray
            elif op == 3 and self.hue > 0:
                shift = np.random.uniform(-self.hue, self.hue)
                hsv = cv2.cvtColor(
                    np.clip(out, 0, 255) / 255., cv2.COLOR_BGR2HSV)
                hsv[..., 0] = np.mod(hsv[..., 0] + shift * 360., 360.)
                out = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR) * 255.
            out = np.clip(out, 0, 255)
        out = np.round(out).astype(np.uint8)
        if single:
            out = out[..., :1] if img.ndim == 3 else out[..., 0]
        results['img'] = out
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(brightness={self.brightness}, '
                f'saturation={self.saturation}, contrast={self.contrast}, '
                f'hue={self.hue})')


# ---------------------------------------------------------------------------
# Precomputed-latent mode (see imdd_mm.datasets.image_caption.
# LatentCaptionDataset): the frozen VAE and text/image encoders ran once, so
# the only augmentations left are the ones that commute (approximately) with
# the encoders: flips of the latent grid. Rotation, colour jitter and the
# random resized crop of Table 8 are NOT available in this mode.
@TRANSFORMS.register_module()
class RandomFlipLatent(BaseTransform):
    """Flip precomputed VAE moments ``results['latent']`` (C, h, w).

    The SD VAE is a convolutional network, so the latent of a flipped image
    is close to the flipped latent (not identical: the kernels are not
    symmetric). The text and CLIP image embeddings are kept as they are.

    Args:
        hflip_prob (float): Horizontal flip probability. Defaults to 0.5.
        vflip_prob (float): Vertical flip probability. Defaults to 0.5.
    """

    def __init__(self, hflip_prob: float = 0.5,
                 vflip_prob: float = 0.5) -> None:
        self.hflip_prob = hflip_prob
        self.vflip_prob = vflip_prob

    def transform(self, results: dict) -> dict:
        import torch
        latent = results['latent']
        dims = []
        if np.random.rand() < self.hflip_prob:
            dims.append(-1)
        if np.random.rand() < self.vflip_prob:
            dims.append(-2)
        if dims:
            latent = torch.flip(latent, dims)
        results['latent'] = latent
        results['latent_flip'] = tuple(dims)
        return results


@TRANSFORMS.register_module()
class PackLatentInputs(BaseTransform):
    """Pack a precomputed sample for ``IMDDDiffusionPretrainer`` with
    ``input_type='latent'``: ``inputs`` = VAE moments (2C, h, w) and a data
    sample holding ``text_embed`` (D,), ``image_embed`` (D_clip,) and the
    metainfo ``caption`` etc.

    Args:
        meta_keys (Sequence[str]): Keys copied into the metainfo when
            present. Defaults to ('img_path', 'caption', 'source',
            'latent_flip').
    """

    def __init__(self,
                 meta_keys: Sequence[str] = ('img_path', 'caption', 'source',
                                             'latent_flip')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        from mmengine.structures import BaseDataElement
        sample = BaseDataElement(metainfo={
            k: results[k]
            for k in self.meta_keys if k in results
        })
        sample.text_embed = results['text_embed']
        sample.image_embed = results['image_embed']
        return dict(inputs=results['latent'], data_samples=sample)
