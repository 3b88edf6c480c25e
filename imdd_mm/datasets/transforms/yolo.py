# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Data transforms of the YOLOv8 baseline (§11.2).

* :class:`LetterResize` - keep-ratio resize into a fixed canvas, centred,
  padded with grey 114 ("letterbox"); records ``scale_factor`` (w, h) and
  ``letterbox_pad`` (top, bottom, left, right) so predictions can be mapped
  back to the original image (``YOLOv8Head`` does it).
* :class:`YOLOv8RandomAffine` - random scale/translate (rotation and shear
  optional) around the image centre into a fixed output size. After mmdet's
  ``Mosaic`` (a 2x canvas) it crops the centre, otherwise it keeps the whole
  image; degenerate boxes are dropped (width/height <= 2 px, area kept
  < 10 %, aspect ratio > 100).
* :class:`YOLOv8MixUp` - mmdet's ``MixUp`` applied with a probability.

Training pipeline of the configs (``MultiImageMixDataset``): load -> keep
ratio resize to 640 -> ``Mosaic(prob=0.8)`` -> ``YOLOv8RandomAffine`` ->
``YOLOv8MixUp(prob=0.15)`` -> ``YOLOXHSVRandomAug`` -> ``RandomFlip(0.5)``.
"""
from typing import Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmdet.datasets.transforms import MixUp, RandomAffine
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import autocast_box_type
from mmdet.structures.mask import BitmapMasks
from numpy import random


def _wh(scale: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(scale, int):
        return scale, scale
    if len(scale) != 2:
        raise ValueError(f'scale must be an int or (w, h), got {scale}')
    return int(scale[0]), int(scale[1])


@TRANSFORMS.register_module()
class LetterResize(BaseTransform):
    """Letterbox: keep-ratio resize into a ``scale`` canvas, centred, padded.

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``,
    ``gt_bboxes``, ``gt_masks`` (bitmap). Added keys: ``scale_factor``
    (w_scale, h_scale), ``letterbox_pad`` (np.float32 array: top, bottom,
    left, right), ``keep_ratio``.

    Args:
        scale (int | tuple[int, int]): Output (w, h). Defaults to 640.
        pad_val (int | tuple): Padding colour. Defaults to 114.
        allow_scale_up (bool): Enlarge images smaller than ``scale``
            (False: only shrink). Defaults to True.
        interpolation (str): mmcv interpolation. Defaults to 'bilinear'.
    """

    def __init__(self,
                 scale: Union[int, Tuple[int, int]] = 640,
                 pad_val: Union[int, Tuple[int, int, int]] = 114,
                 allow_scale_up: bool = True,
                 interpolation: str = 'bilinear') -> None:
        self.scale = _wh(scale)
        self.pad_val = pad_val
        self.allow_scale_up = allow_scale_up
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        out_w, out_h = self.scale
        ratio = min(out_w / w, out_h / h)
        if not self.allow_scale_up:
            ratio = min(ratio, 1.0)
        new_w, new_h = max(int(round(w * ratio)), 1), max(
            int(round(h * ratio)), 1)
        if (new_w, new_h) != (w, h):
            img = mmcv.imresize(img, (new_w, new_h),
                                interpolation=self.interpolation)
        top = (out_h - new_h) // 2
        left = (out_w - new_w) // 2
        bottom, right = out_h - new_h - top, out_w - new_w - left
        pad_val = self.pad_val
        if img.ndim == 3 and isinstance(pad_val, (int, float)):
            pad_val = (pad_val, ) * img.shape[2]
        img = cv2.copyMakeBorder(img, top, bottom, left, right,
                                 cv2.BORDER_CONSTANT, value=pad_val)
        sw, sh = new_w / w, new_h / h
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        old = results.get('scale_factor')
        results['scale_factor'] = (sw * old[0], sh * old[1]) \
            if old is not None else (sw, sh)
        results['letterbox_pad'] = np.array([top, bottom, left, right],
                                            dtype=np.float32)
        results['keep_ratio'] = True
        if results.get('gt_bboxes') is not None:
            results['gt_bboxes'].rescale_([sw, sh])
            results['gt_bboxes'].translate_([left, top])
        if results.get('gt_masks') is not None:
            masks = results['gt_masks']
            if not isinstance(masks, BitmapMasks):
                raise NotImplementedError(
                    'LetterResize supports BitmapMasks only, got '
                    f'{type(masks).__name__}')
            masks = masks.resize((new_h, new_w))
            results['gt_masks'] = masks.expand(out_h, out_w, top, left)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, '
                f'pad_val={self.pad_val}, '
                f'allow_scale_up={self.allow_scale_up})')


@TRANSFORMS.register_module()
class YOLOv8RandomAffine(RandomAffine):
    """Centred random affine into a fixed output size.

    The image centre is moved to the origin, rotated / scaled / sheared,
    then moved to ``(0.5 + t_x) * out_w, (0.5 + t_y) * out_h`` with
    ``t ~ U(-max_translate_ratio, max_translate_ratio)``.

    Args:
        img_scale (tuple[int, int]): Output (w, h). Defaults to (640, 640).
        max_rotate_degree (float): Defaults to 0 (YOLOv8 default).
        max_translate_ratio (float): Defaults to 0.1.
        scaling_ratio_range (tuple): Defaults to (0.5, 1.5).
        max_shear_degree (float): Defaults to 0.
        border_val (tuple): Fill colour. Defaults to (114, 114, 114).
        min_bbox_size (float): Minimum kept box width/height. Defaults to 2.
        min_area_ratio (float): Minimum kept area fraction. Defaults to 0.1.
        max_aspect_ratio (float): Maximum kept aspect ratio. Defaults to 100.
    """

    def __init__(self,
                 img_scale: Tuple[int, int] = (640, 640),
                 max_rotate_degree: float = 0.0,
                 max_translate_ratio: float = 0.1,
                 scaling_ratio_range: Tuple[float, float] = (0.5, 1.5),
                 max_shear_degree: float = 0.0,
                 border_val: Tuple[int, int, int] = (114, 114, 114),
                 min_bbox_size: float = 2.0,
                 min_area_ratio: float = 0.1,
                 max_aspect_ratio: float = 100.0,
                 bbox_clip_border: bool = True) -> None:
        super().__init__(
            max_rotate_degree=max_rotate_degree,
            max_translate_ratio=max_translate_ratio,
            scaling_ratio_range=scaling_ratio_range,
            max_shear_degree=max_shear_degree,
            border=(0, 0),
            border_val=border_val,
            bbox_clip_border=bbox_clip_border)
        self.img_scale = _wh(img_scale)
        self.min_bbox_size = min_bbox_size
        self.min_area_ratio = min_area_ratio
        self.max_aspect_ratio = max_aspect_ratio

    @cache_randomness
    def _random_matrix(self, height: int, width: int
                       ) -> Tuple[np.ndarray, float]:
        out_w, out_h = self.img_scale
        center = self._get_translation_matrix(-width / 2, -height / 2)
        rot = self._get_rotation_matrix(
            random.uniform(-self.max_rotate_degree, self.max_rotate_degree))
        scale = random.uniform(*self.scaling_ratio_range)
        scaling = self._get_scaling_matrix(scale)
        shear = self._get_shear_matrix(
            random.uniform(-self.max_shear_degree, self.max_shear_degree),
            random.uniform(-self.max_shear_degree, self.max_shear_degree))
        t = self.max_translate_ratio
        trans = self._get_translation_matrix(
            (0.5 + random.uniform(-t, t)) * out_w,
            (0.5 + random.uniform(-t, t)) * out_h)
        return trans @ shear @ rot @ scaling @ center, scale

    @autocast_box_type()
    def transform(self, results: dict) -> dict:
        if results.get('gt_masks') is not None:
            raise NotImplementedError(
                'YOLOv8RandomAffine supports boxes only (no gt_masks)')
        img = results['img']
        out_w, out_h = self.img_scale
        matrix, scale = self._random_matrix(img.shape[0], img.shape[1])
        results['img'] = cv2.warpPerspective(
            img, matrix, dsize=(out_w, out_h), borderValue=self.border_val)
        results['img_shape'] = results['img'].shape[:2]
        bboxes = results.get('gt_bboxes')
        if bboxes is None or len(bboxes) == 0:
            return results
        before = bboxes.clone()
        bboxes.project_(matrix)
        if self.bbox_clip_border:
            bboxes.clip_([out_h, out_w])
        keep = self._box_candidates(before.tensor.numpy() * scale,
                                    bboxes.tensor.numpy())
        keep &= bboxes.is_inside([out_h, out_w]).numpy()
        results['gt_bboxes'] = bboxes[keep]
        for key in ('gt_bboxes_labels', 'gt_ignore_flags'):
            if key in results:
                results[key] = results[key][keep]
        return results

    def _box_candidates(self, before: np.ndarray,
                        after: np.ndarray) -> np.ndarray:
        """Boolean (N,) mask of boxes worth keeping after the warp."""
        w0, h0 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
        w1, h1 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
        eps = 1e-16
        aspect = np.maximum(w1 / (h1 + eps), h1 / (w1 + eps))
        return ((w1 > self.min_bbox_size) & (h1 > self.min_bbox_size)
                & (w1 * h1 / (w0 * h0 + eps) > self.min_area_ratio)
                & (aspect < self.max_aspect_ratio))

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(img_scale={self.img_scale}, '
                f'max_translate_ratio={self.max_translate_ratio}, '
                f'scaling_ratio_range={self.scaling_ratio_range}, '
                f'max_rotate_degree={self.max_rotate_degree}, '
                f'max_shear_degree={self.max_shear_degree})')


@TRANSFORMS.register_module()
class YOLOv8MixUp(MixUp):
    """mmdet :class:`~mmdet.datasets.transforms.MixUp` applied with
    probability ``prob`` (YOLOv8 uses 0.15). Other arguments as ``MixUp``.

    The draw happens in :meth:`get_indexes` (called by
    ``MultiImageMixDataset`` before the transform): when MixUp is skipped no
    second image is loaded and ``mix_results`` is empty, which
    :meth:`transform` passes through unchanged.
    """

    def __init__(self, prob: float = 0.15, **kwargs) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        super().__init__(**kwargs)
        self.prob = prob

    def get_indexes(self, dataset) -> list:
        if random.uniform(0, 1) >= self.prob:
            return []
        return [super().get_indexes(dataset)]

    def transform(self, results: dict) -> dict:
        if not results.get('mix_results'):
            return results
        return super().transform(results)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f', prob={self.prob})'
