# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Pixel-level segmentation metrics (Table 5 / 7 / 11 of the IMDD-1M paper).

All metrics are computed from counts pooled over every pixel of every image
(not averaged per image), exactly like MMSegmentation's ``IoUMetric``:

For one class ``c`` with ``TP`` = pixels predicted ``c`` and labelled ``c``,
``FP`` = predicted ``c`` but labelled otherwise, ``FN`` = labelled ``c`` but
predicted otherwise, ``TN`` = the rest (pixels equal to ``ignore_index`` in
the ground truth are dropped first):

* IoU = TP / (TP + FP + FN)           (mmseg ``IoU``)
* Acc (per class) = TP / (TP + FN)    (mmseg ``Acc``, i.e. recall)
* Precision = TP / (TP + FP)
* Recall = TP / (TP + FN)
* F1 = 2 * Precision * Recall / (Precision + Recall)   (mmseg ``Fscore``)
* Dice = 2 TP / (2 TP + FP + FN)      (mmseg ``Dice``)
* aAcc (overall pixel accuracy) = sum_c TP_c / #pixels

F1 and Dice coincide when computed from pooled counts (as in the paper's
Table 5); both are reported. Classes absent from both prediction and ground
truth give NaN and are skipped by the ``m*`` means (``np.nanmean``), as in
mmseg.

The **binary defect-vs-normal** variant (the headline numbers of Table 5)
collapses every defect class into one: ``pixel accuracy = (TP + TN) / #pixels``
and F1 / IoU / Dice of the defect class.

Label convention (DESIGN "Samples"): 0 = normal background, ``k + 1`` =
defect class ``k``.
"""
from typing import Dict, Sequence, Tuple

import numpy as np

__all__ = [
    'intersect_and_union', 'areas_to_metrics', 'binary_seg_counts',
    'binary_seg_metrics', 'seg_metrics'
]


def intersect_and_union(pred: np.ndarray, label: np.ndarray,
                        num_classes: int, ignore_index: int = 255
                        ) -> Tuple[np.ndarray, np.ndarray, np.ndarray,
                                   np.ndarray]:
    """Per-class pixel areas of one image (numpy twin of mmseg's
    ``IoUMetric.intersect_and_union``).

    Args:
        pred (np.ndarray): (H, W) int predicted labels in ``[0, num_classes)``.
        label (np.ndarray): (H, W) int ground-truth labels.
        num_classes (int): number of labels, background included.
        ignore_index (int): ground-truth value to drop.

    Returns:
        tuple[np.ndarray]: ``area_intersect, area_union, area_pred,
        area_label``, each (num_classes,) int64.
    """
    pred = np.asarray(pred)
    label = np.asarray(label)
    if pred.shape != label.shape:
        raise ValueError(f'prediction {pred.shape} and ground truth '
                         f'{label.shape} differ in shape')
    keep = label != ignore_index
    pred = pred[keep].astype(np.int64)
    label = label[keep].astype(np.int64)
    # mmseg's histc drops values outside [0, num_classes - 1]
    valid_p = (pred >= 0) & (pred < num_classes)
    valid_l = (label >= 0) & (label < num_classes)
    inter = pred[(pred == label) & valid_p]
    area_i = np.bincount(inter, minlength=num_classes)[:num_classes]
    area_p = np.bincount(pred[valid_p], minlength=num_classes)[:num_classes]
    area_l = np.bincount(label[valid_l], minlength=num_classes)[:num_classes]
    area_u = area_p + area_l - area_i
    return area_i, area_u, area_p, area_l


def areas_to_metrics(area_intersect: np.ndarray, area_union: np.ndarray,
                     area_pred: np.ndarray,
                     area_label: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-class metrics from pooled areas (same as mmseg's
    ``IoUMetric.total_area_to_metrics`` with ``['mIoU', 'mDice',
    'mFscore']``).

    Returns:
        dict: ``aAcc`` (scalar) and per-class (num_classes,) float64 arrays
        ``IoU, Acc, Dice, Fscore, Precision, Recall``.
    """
    ai = np.asarray(area_intersect, np.float64)
    au = np.asarray(area_union, np.float64)
    ap = np.asarray(area_pred, np.float64)
    al = np.asarray(area_label, np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        precision = ai / ap
        recall = ai / al
        return dict(
            aAcc=ai.sum() / al.sum(),
            IoU=ai / au,
            Acc=recall,
            Dice=2 * ai / (ap + al),
            Fscore=2 * precision * recall / (precision + recall),
            Precision=precision,
            Recall=recall)


def _kept_pixels(pred: np.ndarray, gt_defect: np.ndarray,
                 ignore: np.ndarray, what: str) -> Tuple[np.ndarray,
                                                         np.ndarray]:
    """``pred`` and the bool ground truth (same shape checked), without
    the ``ignore`` pixels."""
    g = np.asarray(gt_defect, bool)
    if pred.shape != g.shape:
        raise ValueError(f'{what} {pred.shape} and ground truth {g.shape} '
                         'differ in shape')
    if ignore is not None:
        keep = ~np.asarray(ignore, bool)
        pred, g = pred[keep], g[keep]
    return pred, g


def binary_seg_counts(pred_defect: np.ndarray,
                      gt_defect: np.ndarray,
                      ignore: np.ndarray = None) -> np.ndarray:
    """``[TP, FP, FN, TN]`` (int64) of defect-vs-normal masks of one image.

    Args:
        pred_defect (np.ndarray): (H, W) bool predicted defect pixels.
        gt_defect (np.ndarray): (H, W) bool ground-truth defect pixels.
        ignore (np.ndarray, optional): (H, W) bool pixels to drop.
    """
    p, g = _kept_pixels(np.asarray(pred_defect, bool), gt_defect, ignore,
                        'prediction')
    tp = int(np.count_nonzero(p & g))
    fp = int(np.count_nonzero(p & ~g))
    fn = int(np.count_nonzero(~p & g))
    tn = int(p.size - tp - fp - fn)
    return np.array([tp, fp, fn, tn], np.int64)


def binary_seg_counts_at(score: np.ndarray, gt_defect: np.ndarray,
                         thresholds: Sequence[float],
                         ignore: np.ndarray = None) -> np.ndarray:
    """``[TP, FP, FN, TN]`` of ``score >= t`` for every threshold ``t``.

    Equal to :func:`binary_seg_counts` of ``score >= t`` at each ``t``,
    from one pass over the pixels (each pixel is counted in the bin of
    the thresholds it reaches).

    Args:
        score (np.ndarray): (H, W) float defect score.
        gt_defect (np.ndarray): (H, W) bool ground-truth defect pixels.
        thresholds (Sequence[float]): T thresholds, in any order.
        ignore (np.ndarray, optional): (H, W) bool pixels to drop.

    Returns:
        np.ndarray: (T, 4) int64 counts, in the order of ``thresholds``.
    """
    s, g = _kept_pixels(np.asarray(score, np.float64), gt_defect, ignore,
                        'score')
    thr = np.asarray(list(thresholds), np.float64)
    if thr.ndim != 1 or thr.size == 0 or not np.isfinite(thr).all():
        raise ValueError(f'thresholds must be a non-empty list of finite '
                         f'numbers, got {list(thresholds)!r}')
    order = np.argsort(thr, kind='stable')
    sorted_thr = thr[order]
    # number of thresholds each pixel reaches (score >= t)
    reached = np.searchsorted(sorted_thr, s.ravel(), side='right')
    t = sorted_thr.size
    pos = np.bincount(reached[g.ravel()], minlength=t + 1)
    neg = np.bincount(reached[~g.ravel()], minlength=t + 1)
    # pixels with reached > i pass sorted threshold i
    tp = pos[::-1].cumsum()[::-1][1:]
    fp = neg[::-1].cumsum()[::-1][1:]
    fn = int(g.sum()) - tp
    tn = int((~g).sum()) - fp
    out = np.empty((t, 4), np.int64)
    out[order] = np.stack([tp, fp, fn, tn], 1)
    return out


def binary_seg_metrics(counts: np.ndarray) -> Dict[str, float]:
    """Defect-vs-normal metrics from pooled ``[TP, FP, FN, TN]``.

    Returns:
        dict: ``acc = (TP+TN)/all``, ``precision``, ``recall``,
        ``f1 = 2PR/(P+R)``, ``iou = TP/(TP+FP+FN)``,
        ``dice = 2TP/(2TP+FP+FN)``. A ratio with a zero denominator is NaN
        except that IoU, Dice and F1 are 1.0 when there are pixels but
        neither defect predictions nor defect pixels (a perfect, empty
        result); everything is NaN without pixels.
    """
    tp, fp, fn, tn = (float(x) for x in counts)
    total = tp + fp + fn + tn

    def div(a, b):
        return a / b if b > 0 else float('nan')

    precision = div(tp, tp + fp)
    recall = div(tp, tp + fn)
    if total == 0:
        f1 = iou = dice = float('nan')
    elif tp + fp + fn == 0:
        f1 = iou = dice = 1.0
    else:
        iou = tp / (tp + fp + fn)
        dice = 2 * tp / (2 * tp + fp + fn)
        f1 = (0.0 if tp == 0 else 2 * precision * recall /
              (precision + recall))
    return dict(acc=div(tp + tn, total), precision=precision, recall=recall,
                f1=f1, iou=iou, dice=dice)


def seg_metrics(preds, gts, num_classes: int,
                ignore_index: int = 255) -> Dict[str, object]:
    """All segmentation metrics for lists of label maps.

    Args:
        preds (Sequence[np.ndarray]): (H, W) predicted label maps,
            0 = normal, ``k + 1`` = class ``k``.
        gts (Sequence[np.ndarray]): (H, W) ground-truth label maps.
        num_classes (int): number of labels including the background.
        ignore_index (int): ground-truth value to drop.

    Returns:
        dict: binary ``acc, precision, recall, f1, iou, dice``; multi-class
        ``aAcc, mIoU, mAcc, mDice, mFscore`` (NaN-skipping means over
        classes, background included as in mmseg) and the per-class arrays
        under ``per_class``.
    """
    totals = np.zeros((4, num_classes), np.int64)
    counts = np.zeros(4, np.int64)
    for pred, gt in zip(preds, gts):
        pred = np.asarray(pred)
        gt = np.asarray(gt)
        totals += np.stack(intersect_and_union(pred, gt, num_classes,
                                               ignore_index))
        counts += binary_seg_counts(pred > 0, (gt > 0) & (gt != ignore_index),
                                    ignore=gt == ignore_index)
    per_class = areas_to_metrics(*totals)
    out: Dict[str, object] = dict(binary_seg_metrics(counts))
    out.update(
        aAcc=float(per_class['aAcc']),
        mIoU=float(np.nanmean(per_class['IoU'])),
        mAcc=float(np.nanmean(per_class['Acc'])),
        mDice=float(np.nanmean(per_class['Dice'])),
        mFscore=float(np.nanmean(per_class['Fscore'])),
        per_class=per_class)
    return out
