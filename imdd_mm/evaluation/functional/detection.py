# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Mask-derived boxes and box-detection metrics (Table 4 of the paper).

Box convention (DESIGN "Box convention"), shared by ground truth and
predictions through one switch ``box_mode``:

* ``'mask'``: one box per mask, the tight box of all its pixels;
* ``'components'``: one box per 8-connected component of each mask (the
  mask's label and score are repeated for every component).

Boxes are ``xyxy`` in pixel-edge coordinates like mmdet's ``mask2bbox``: a
mask whose pixels span columns ``x0..x1`` and rows ``y0..y1`` (inclusive)
gets ``[x0, y0, x1 + 1, y1 + 1]``. Empty masks give no box.

mAP@0.5 / mAP@0.75 are COCO-style (101-point interpolated AP, all areas,
100 detections per image, averaged over categories) computed by
pycocotools; "average IoU" is the mean, over all ground-truth boxes, of the
best IoU reached by a prediction of the same class (any class when
``class_agnostic``) with score ``>= score_thr`` (0 when there is none).
"""
import contextlib
import io
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    'BOX_MODES', 'masks_to_boxes', 'box_iou', 'coco_box_metrics',
    'average_best_iou', 'build_coco_gt', 'build_coco_results'
]

BOX_MODES = ('mask', 'components')


def _mask_box(mask: np.ndarray) -> Optional[List[float]]:
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return [float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)]


def masks_to_boxes(masks: np.ndarray,
                   box_mode: str = 'mask') -> Tuple[np.ndarray, np.ndarray]:
    """Boxes of binary masks following ``box_mode``.

    Args:
        masks (np.ndarray): (N, H, W) bool masks.
        box_mode (str): ``'mask'`` or ``'components'``.

    Returns:
        tuple: ``boxes`` (M, 4) float32 xyxy and ``index`` (M,) int64, the
        mask each box comes from (use it to repeat labels and scores).
    """
    if box_mode not in BOX_MODES:
        raise ValueError(f'box_mode must be one of {BOX_MODES}, '
                         f'got {box_mode!r}')
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f'masks must have shape (N, H, W), got {masks.shape}')
    boxes, index = [], []
    for i, mask in enumerate(masks.astype(bool, copy=False)):
        if box_mode == 'mask':
            box = _mask_box(mask)
            if box is not None:
                boxes.append(box)
                index.append(i)
            continue
        if not mask.any():
            continue
        _, _, stats, _ = cv2.connectedComponentsWithStats(
            mask.astype(np.uint8), connectivity=8)
        for x, y, w, h, _area in stats[1:]:
            boxes.append([float(x), float(y), float(x + w), float(y + h)])
            index.append(i)
    return (np.asarray(boxes, np.float32).reshape(-1, 4),
            np.asarray(index, np.int64))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: (A, 4) x (B, 4) -> (A, B)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clip(0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(union > 0, inter / union, 0.0)


def _xywh(box) -> List[float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


def build_coco_gt(gts: Sequence[dict], num_classes: int,
                  class_agnostic: bool = False,
                  image_sizes: Optional[Sequence[Tuple[int, int]]] = None
                  ) -> dict:
    """COCO ground-truth dict from per-image ``dict(bboxes (K,4) xyxy,
    labels (K,))``; image ids are ``1..N`` and category ids ``1..C``."""
    images, anns = [], []
    for i, gt in enumerate(gts):
        h, w = image_sizes[i] if image_sizes is not None else (0, 0)
        images.append(dict(id=i + 1, width=int(w), height=int(h)))
        for box, label in zip(np.asarray(gt['bboxes']).reshape(-1, 4),
                              np.asarray(gt['labels']).reshape(-1)):
            xywh = _xywh(box)
            anns.append(
                dict(id=len(anns) + 1, image_id=i + 1,
                     category_id=1 if class_agnostic else int(label) + 1,
                     bbox=xywh, area=xywh[2] * xywh[3], iscrowd=0))
    ncat = 1 if class_agnostic else num_classes
    cats = [dict(id=c + 1, name=str(c)) for c in range(ncat)]
    return dict(images=images, annotations=anns, categories=cats)


def build_coco_results(preds: Sequence[dict],
                       class_agnostic: bool = False) -> List[dict]:
    """COCO result list from per-image ``dict(bboxes, scores, labels)``."""
    results = []
    for i, pred in enumerate(preds):
        for box, score, label in zip(
                np.asarray(pred['bboxes']).reshape(-1, 4),
                np.asarray(pred['scores']).reshape(-1),
                np.asarray(pred['labels']).reshape(-1)):
            results.append(
                dict(image_id=i + 1,
                     category_id=1 if class_agnostic else int(label) + 1,
                     bbox=_xywh(box), score=float(score)))
    return results


def coco_box_metrics(gts: Sequence[dict],
                     preds: Sequence[dict],
                     num_classes: int,
                     class_agnostic: bool = False) -> Dict[str, float]:
    """COCO box AP through pycocotools.

    Args:
        gts (Sequence[dict]): per image ``bboxes`` (K, 4) xyxy and
            ``labels`` (K,) in ``[0, num_classes)``.
        preds (Sequence[dict]): per image ``bboxes`` (M, 4) xyxy,
            ``scores`` (M,), ``labels`` (M,).
        num_classes (int): number of defect classes.
        class_agnostic (bool): evaluate all classes as one.

    Returns:
        dict: ``mAP`` (IoU 0.50:0.95), ``mAP_50``, ``mAP_75``; NaN when
        there is no ground-truth box, 0 when there is no prediction.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(gts) != len(preds):
        raise ValueError(f'{len(gts)} ground truths but {len(preds)} '
                         'predictions')
    gt_dict = build_coco_gt(gts, num_classes, class_agnostic)
    if not gt_dict['annotations']:
        return dict(mAP=float('nan'), mAP_50=float('nan'),
                    mAP_75=float('nan'))
    results = build_coco_results(preds, class_agnostic)
    if not results:
        return dict(mAP=0.0, mAP_50=0.0, mAP_75=0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, 'bbox')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = ev.stats
    return dict(mAP=float(stats[0]), mAP_50=float(stats[1]),
                mAP_75=float(stats[2]))


def average_best_iou(gts: Sequence[dict],
                     preds: Sequence[dict],
                     score_thr: float = 0.3,
                     class_agnostic: bool = False) -> float:
    """Mean over all ground-truth boxes of the best IoU with a prediction
    (same class unless ``class_agnostic``, score ``>= score_thr``).

    Returns:
        float: average IoU in [0, 1]; NaN without ground-truth boxes.
    """
    best_all = []
    for gt, pred in zip(gts, preds):
        g_boxes = np.asarray(gt['bboxes'], np.float64).reshape(-1, 4)
        if len(g_boxes) == 0:
            continue
        g_labels = np.asarray(gt['labels']).reshape(-1)
        p_boxes = np.asarray(pred['bboxes'], np.float64).reshape(-1, 4)
        p_scores = np.asarray(pred['scores'], np.float64).reshape(-1)
        p_labels = np.asarray(pred['labels']).reshape(-1)
        keep = p_scores >= score_thr
        p_boxes, p_labels = p_boxes[keep], p_labels[keep]
        ious = box_iou(g_boxes, p_boxes)
        if not class_agnostic:
            ious = np.where(g_labels[:, None] == p_labels[None, :], ious, 0.0)
        best = ious.max(axis=1) if ious.shape[1] else np.zeros(len(g_boxes))
        best_all.append(best)
    if not best_all:
        return float('nan')
    return float(np.concatenate(best_all).mean())
