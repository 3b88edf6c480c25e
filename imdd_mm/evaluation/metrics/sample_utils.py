# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Read ground truth and predictions out of ``DetDataSample`` dicts.

The mmengine ``Evaluator`` hands metrics ``DetDataSample.to_dict()``
results: metainfo keys at the top level, ``gt_instances`` /
``pred_instances`` / ``pred_sem_seg`` / ``pred_score_map`` as nested dicts
(DESIGN "Samples"). These helpers accept those dicts and also the
``DetDataSample`` objects themselves.
"""
from typing import Any, FrozenSet, Optional, Tuple

import numpy as np

__all__ = [
    'to_numpy', 'sample_name', 'get_field', 'gt_masks', 'gt_boxes',
    'gt_defect_mask', 'gt_label_map', 'gt_image_labels', 'is_defective',
    'is_normal', 'image_shape', 'check_label_names'
]


def to_numpy(x: Any) -> np.ndarray:
    """Tensor / BitmapMasks / HorizontalBoxes / array-like -> numpy."""
    if x is None:
        return None
    if hasattr(x, 'masks') and isinstance(getattr(x, 'masks'), np.ndarray):
        return x.masks  # mmdet BitmapMasks
    if hasattr(x, 'to_ndarray'):  # PolygonMasks
        return x.to_ndarray()
    if hasattr(x, 'tensor') and not hasattr(x, 'detach'):
        x = x.tensor  # mmdet BaseBoxes
    if hasattr(x, 'detach'):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def get_field(sample: Any, key: str, default: Any = None) -> Any:
    """``sample[key]`` for dicts and ``BaseDataElement``s alike."""
    # dicts and BaseDataElement (data fields and metainfo) both have get()
    return sample.get(key, default)


def sample_name(sample: Any) -> str:
    for key in ('img_path', 'img_id'):
        value = get_field(sample, key)
        if value is not None:
            return f'{key}={value}'
    return '<unknown image>'


def image_shape(sample: Any) -> Optional[Tuple[int, int]]:
    shape = get_field(sample, 'ori_shape')
    return tuple(int(v) for v in shape[:2]) if shape is not None else None


def _has(container: Any, key: str) -> bool:
    if container is None:
        return False
    if isinstance(container, dict):
        return key in container
    return key in container  # InstanceData supports ``in``


def gt_masks(sample: Any) -> Optional[np.ndarray]:
    """(K, H, W) bool instance masks, or ``None`` when the sample carries no
    masks (a box-only source)."""
    inst = get_field(sample, 'gt_instances')
    if not _has(inst, 'masks'):
        return None
    masks = to_numpy(inst.get('masks'))
    if masks.ndim != 3:
        shape = image_shape(sample)
        if masks.size == 0 and shape is not None:
            return np.zeros((0, ) + shape, bool)
        raise ValueError(f'{sample_name(sample)}: gt masks must have shape '
                         f'(K, H, W), got {masks.shape}')
    return masks.astype(bool, copy=False)


def gt_labels(sample: Any) -> np.ndarray:
    inst = get_field(sample, 'gt_instances')
    if not _has(inst, 'labels'):
        return np.zeros(0, np.int64)
    return to_numpy(inst.get('labels')).astype(np.int64).reshape(-1)


def gt_boxes(sample: Any) -> np.ndarray:
    inst = get_field(sample, 'gt_instances')
    if not _has(inst, 'bboxes'):
        return np.zeros((0, 4), np.float32)
    return to_numpy(inst.get('bboxes')).astype(np.float32).reshape(-1, 4)


def gt_defect_mask(sample: Any, shape: Tuple[int, int]) -> np.ndarray:
    """(H, W) bool union of the ground-truth instance masks (or
    ``gt_sem_seg > 0`` for mmseg samples without ``gt_instances``).

    Raises:
        ValueError: if the image has instances but no masks (pixel metrics
            cannot be computed on box-only ground truth) or the mask size
            differs from ``shape``.
    """
    if get_field(sample, 'gt_instances') is None and \
            get_field(sample, 'gt_sem_seg') is not None:
        field = get_field(sample, 'gt_sem_seg')
        seg = field.get('sem_seg')
        seg = to_numpy(field.get('data') if seg is None else seg)
        seg = seg.reshape(seg.shape[-2:])
        if seg.shape != tuple(shape):
            raise ValueError(f'{sample_name(sample)}: gt_sem_seg is '
                             f'{seg.shape} but the prediction is '
                             f'{tuple(shape)}')
        if (seg == 255).any():
            raise ValueError(f'{sample_name(sample)}: gt_sem_seg has '
                             'ignored pixels (255), which anomaly metrics '
                             'do not support')
        return seg > 0
    masks = gt_masks(sample)
    if masks is None:
        if len(gt_labels(sample)):
            raise ValueError(
                f'{sample_name(sample)}: ground truth has instances but no '
                'masks; pixel-level metrics need `with_mask=True` in '
                'LoadAnnotations (box-only sources cannot be evaluated)')
        return np.zeros(shape, bool)
    if masks.shape[0] == 0:
        return np.zeros(shape, bool)
    if masks.shape[1:] != tuple(shape):
        raise ValueError(
            f'{sample_name(sample)}: ground-truth masks are '
            f'{masks.shape[1:]} but the prediction is {tuple(shape)}; both '
            'must be at the original image size (load annotations after '
            'Resize in the test pipeline)')
    return masks.any(axis=0)


def gt_label_map(sample: Any, shape: Tuple[int, int]) -> np.ndarray:
    """(H, W) int64 semantic map from the instances: 0 = normal, ``k + 1`` =
    class ``k``; where instances overlap the later one wins."""
    masks = gt_masks(sample)
    labels = gt_labels(sample)
    out = np.zeros(shape, np.int64)
    if masks is None:
        if len(labels):
            raise ValueError(
                f'{sample_name(sample)}: ground truth has instances but no '
                'masks; segmentation metrics need masks')
        return out
    if masks.shape[0] and masks.shape[1:] != tuple(shape):
        raise ValueError(
            f'{sample_name(sample)}: ground-truth masks are '
            f'{masks.shape[1:]} but the prediction is {tuple(shape)}')
    for mask, label in zip(masks, labels):
        out[mask] = int(label) + 1
    return out


def is_normal(sample: Any) -> Optional[bool]:
    value = get_field(sample, 'is_normal')
    return None if value is None else bool(value)


def gt_image_labels(sample: Any, policy: str = 'any') -> FrozenSet[int]:
    """True image label(s); ``{-1}`` for a normal image.

    Priority: ``is_normal`` True -> ``{-1}``; metainfo ``image_label`` when
    not ``None``; otherwise the instance labels (``policy='any'``: all of
    them, ``'largest'``: the class covering most pixels, or the first
    instance's class without masks); no instance -> ``{-1}``.
    """
    if is_normal(sample):
        return frozenset([-1])
    image_label = get_field(sample, 'image_label')
    # -1 means "normal or unknown" (IMDDCocoDataset): for an image not
    # marked normal it is unknown, and the instances decide
    if image_label is not None and int(image_label) >= 0:
        return frozenset([int(image_label)])
    labels = gt_labels(sample)
    if len(labels) == 0:
        return frozenset([-1])
    if policy == 'any':
        return frozenset(int(v) for v in labels)
    if policy != 'largest':
        raise ValueError(f"policy must be 'any' or 'largest', got {policy!r}")
    masks = gt_masks(sample)
    if masks is None or masks.shape[0] != len(labels):
        return frozenset([int(labels[0])])
    areas = {}
    for mask, label in zip(masks, labels):
        areas[int(label)] = areas.get(int(label), 0) + int(mask.sum())
    return frozenset([max(sorted(areas), key=lambda c: areas[c])])


def is_defective(sample: Any) -> bool:
    """Image-level ground truth for I-AUROC (True = defective)."""
    normal = is_normal(sample)
    if normal is not None:
        return not normal
    return max(gt_image_labels(sample)) >= 0


def check_label_names(sample: Any, dataset_meta: Optional[dict]) -> None:
    """Refuse predictions whose labels do not index the dataset's classes.

    A model that classifies against its own vocabulary records the names
    of its labels as ``pred_label_names`` metainfo; under evaluation
    ``VocabularyHook`` makes it map them to the dataset's categories by
    name, so the first ``K`` names are the dataset's ``K`` classes (names
    outside the dataset come after them and never match). Anything else
    would be scored by index.

    Raises:
        ValueError: naming the image and both name lists.
    """
    names = get_field(sample, 'pred_label_names')
    classes = (dataset_meta or {}).get('classes')
    if names is None or classes is None:
        return
    classes = tuple(str(c) for c in classes)
    if tuple(str(n) for n in names)[:len(classes)] != classes:
        raise ValueError(
            f'{sample_name(sample)}: predicted labels name {list(names)} but '
            f'the dataset classes are {list(classes)}; evaluate with '
            "dict(type='VocabularyHook') in custom_hooks so that a test "
            'vocabulary is mapped to the dataset categories by name')
