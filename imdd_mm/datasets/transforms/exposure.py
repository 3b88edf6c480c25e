# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Per-image exposure normalisation for grey-level inspection images.

Industrial line-scan and area cameras rarely keep one exposure: Magnetic
Tile's ``MT_Free`` images have mean grey levels from about 49 to 96 (see
``configs/baselines/anomaly/README.md``, "Tests that catch a broken
method"). A network whose features are not invariant to a global gain and
offset (a random-init one, or a small one trained from scratch on a few
images) then ranks a bright normal tile above a dark defect. The classic
remedy in inspection pipelines is to standardise each image's grey levels
before any model sees it; :class:`NormalizeExposure` does that, on the raw
``uint8`` image as loaded, before the data preprocessor's fixed mean/std:

``out = clip((img - mean(img)) / max(std(img), min_std) * target_std
+ target_mean, 0, 255)``

with the mean and standard deviation taken over all pixels and channels of
the image (one gain and one offset per image, so colour ratios of a colour
image are kept up to clipping). It is *not* part of any published
baseline's protocol; the configs that use it say so.
"""
from typing import Optional, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class NormalizeExposure(BaseTransform):
    """Standardise an image's grey levels to a fixed mean and spread.

    Required keys: ``img`` (H, W) or (H, W, C) array. Modified keys: ``img``
    (same shape and dtype; ``uint8`` results are rounded and clipped to
    [0, 255]). Added keys: ``exposure_mean`` and ``exposure_std``, the
    image's own statistics before the change (float), so a prediction can be
    traced back to how much its input was rescaled.

    Args:
        target_mean (float): Grey mean after the change. Defaults to 128.
        target_std (float): Grey standard deviation after the change (before
            clipping). Defaults to 32.
        min_std (float): Floor of the image's standard deviation, so a
            nearly uniform image is shifted, not amplified into noise.
            Defaults to 1.
    """

    def __init__(self,
                 target_mean: float = 128.0,
                 target_std: float = 32.0,
                 min_std: float = 1.0) -> None:
        if not 0 <= target_mean <= 255:
            raise ValueError(
                f'target_mean must lie in [0, 255], got {target_mean}')
        if target_std <= 0 or min_std <= 0:
            raise ValueError('target_std and min_std must be positive, got '
                             f'{target_std} and {min_std}')
        self.target_mean = float(target_mean)
        self.target_std = float(target_std)
        self.min_std = float(min_std)

    def normalize(self, img: np.ndarray) -> Tuple[np.ndarray, float, float]:
        """The change on one array; see the module docstring.

        Args:
            img (np.ndarray): (H, W) or (H, W, C), integer or float.

        Returns:
            tuple: The changed image (same shape and dtype), and the input's
            own mean and standard deviation.
        """
        if img.size == 0:
            raise ValueError('NormalizeExposure got an empty image')
        pixels = img.astype(np.float64)
        mean, std = float(pixels.mean()), float(pixels.std())
        out = (pixels - mean) / max(std, self.min_std) * self.target_std \
            + self.target_mean
        if np.issubdtype(img.dtype, np.integer):
            out = np.clip(np.rint(out), 0, 255)
        return out.astype(img.dtype), mean, std

    def transform(self, results: dict) -> Optional[dict]:
        results['img'], results['exposure_mean'], results['exposure_std'] = \
            self.normalize(results['img'])
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(target_mean={self.target_mean}, '
                f'target_std={self.target_std}, min_std={self.min_std})')
