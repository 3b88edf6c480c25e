# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Packing and loading transforms of imdd-mm samples."""
from typing import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS
from mmseg.registry import TRANSFORMS as SEG_TRANSFORMS

#: metainfo keys of imdd-mm samples (docs/DESIGN.md, "Samples").
IMDD_META_KEYS = ('caption', 'caption_nouns', 'is_normal', 'source',
                  'image_label', 'object_name')


@TRANSFORMS.register_module()
class PackIMDDInputs(PackDetInputs):
    """mmdet's ``PackDetInputs`` that also packs the imdd-mm metainfo keys
    ``caption``, ``caption_nouns``, ``is_normal``, ``source``,
    ``image_label`` and ``object_name`` (anomaly datasets) when present.

    Args:
        meta_keys (Sequence[str]): mmdet's meta keys; the imdd-mm keys are
            appended.
        **kwargs: As for ``PackDetInputs``.
    """

    def __init__(self,
                 meta_keys: Sequence[str] = ('img_id', 'img_path',
                                             'ori_shape', 'img_shape',
                                             'scale_factor', 'flip',
                                             'flip_direction'),
                 **kwargs) -> None:
        keys = tuple(meta_keys) + tuple(k for k in IMDD_META_KEYS
                                        if k not in meta_keys)
        super().__init__(meta_keys=keys, **kwargs)


@SEG_TRANSFORMS.register_module()
@TRANSFORMS.register_module()
class LoadIMDDSemSegAnnotations(BaseTransform):
    """Rasterise ``seg_annotations`` (COCO polygons or RLE with a ``label``)
    into ``gt_seg_map`` (H, W) uint8: 0 = defect-free, ``label`` elsewhere;
    later instances overwrite earlier ones where they overlap.

    Required keys: ``seg_annotations``, ``height``, ``width``.
    Added keys: ``gt_seg_map``, ``seg_fields``.
    """

    def transform(self, results: dict) -> dict:
        from pycocotools import mask as mask_utils
        h, w = int(results['height']), int(results['width'])
        seg = np.zeros((h, w), dtype=np.uint8)
        for ann in results.get('seg_annotations', []):
            segm = ann['segmentation']
            if isinstance(segm, list):
                rles = mask_utils.frPyObjects(segm, h, w)
                rle = mask_utils.merge(rles)
            elif isinstance(segm.get('counts'), list):
                rle = mask_utils.frPyObjects(segm, h, w)
            else:
                rle = dict(segm)
                if isinstance(rle['counts'], str):
                    rle['counts'] = rle['counts'].encode('ascii')
            mask = mask_utils.decode(rle).astype(bool)
            if mask.shape != (h, w):
                raise ValueError(
                    f'{results.get("img_path")}: mask of shape {mask.shape} '
                    f'does not match the image size {(h, w)}')
            seg[mask] = int(ann['label'])
        results['gt_seg_map'] = seg
        results.setdefault('seg_fields', []).append('gt_seg_map')
        return results
