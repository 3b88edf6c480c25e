# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import numpy as np
import pytest
import torch

from imdd_mm.evaluation.functional import (areas_to_metrics,
                                           binary_seg_counts,
                                           binary_seg_metrics,
                                           intersect_and_union, seg_metrics)


def test_binary_toy():
    pred = np.array([[1, 1, 0, 0],
                     [0, 0, 0, 0]], bool)
    gt = np.array([[1, 0, 1, 0],
                   [0, 0, 0, 0]], bool)
    counts = binary_seg_counts(pred, gt)
    assert counts.tolist() == [1, 1, 1, 5]  # TP FP FN TN
    m = binary_seg_metrics(counts)
    assert m['acc'] == pytest.approx(6 / 8)
    assert m['iou'] == pytest.approx(1 / 3)
    assert m['dice'] == pytest.approx(2 / 4)
    assert m['f1'] == pytest.approx(0.5)  # P = R = 1/2
    assert m['precision'] == m['recall'] == pytest.approx(0.5)
    # empty prediction and ground truth: perfect
    empty = binary_seg_metrics(binary_seg_counts(~gt & False, gt & False))
    assert empty['iou'] == empty['dice'] == empty['acc'] == 1.0
    # ignored pixels are dropped
    ig = np.zeros_like(gt)
    ig[0, 1] = True
    assert binary_seg_counts(pred, gt, ignore=ig).tolist() == [1, 0, 1, 5]


def test_multiclass_toy():
    pred = np.array([[0, 1, 1],
                     [2, 2, 0]])
    gt = np.array([[0, 1, 2],
                   [2, 255, 0]])
    ai, au, ap, al = intersect_and_union(pred, gt, 3, 255)
    assert ai.tolist() == [2, 1, 1]
    assert ap.tolist() == [2, 2, 1]
    assert al.tolist() == [2, 1, 2]
    assert au.tolist() == [2, 2, 2]
    per = areas_to_metrics(ai, au, ap, al)
    assert per['aAcc'] == pytest.approx(4 / 5)
    assert per['IoU'].tolist() == pytest.approx([1, 0.5, 0.5])
    out = seg_metrics([pred], [gt], 3)
    assert out['mIoU'] == pytest.approx(2 / 3)
    # binary: defect = label > 0 -> TP 3, FP 0, FN 0, TN 2
    assert out['iou'] == 1.0 and out['acc'] == 1.0


def test_equals_mmseg_iou_metric():
    from mmseg.evaluation.metrics import IoUMetric
    rng = np.random.default_rng(0)
    num = 5
    preds = [rng.integers(0, num, (24, 32)) for _ in range(4)]
    gts = [rng.integers(0, num, (24, 32)) for _ in range(4)]
    gts[0][:3] = 255
    gts[1][gts[1] == 3] = 0  # class 3 missing from one ground truth
    ours = seg_metrics(preds, gts, num, ignore_index=255)
    totals = [torch.zeros(num, dtype=torch.float64) for _ in range(4)]
    bin_totals = [torch.zeros(2, dtype=torch.float64) for _ in range(4)]
    for p, g in zip(preds, gts):
        areas = IoUMetric.intersect_and_union(
            torch.from_numpy(p), torch.from_numpy(g), num, 255)
        np.testing.assert_array_equal(
            np.stack([a.numpy() for a in areas]),
            np.stack(intersect_and_union(p, g, num, 255)))
        totals = [t + a for t, a in zip(totals, areas)]
        bp = torch.from_numpy((p > 0).astype(np.int64))
        bg = torch.from_numpy(np.where(g == 255, 255, g > 0))
        bareas = IoUMetric.intersect_and_union(bp, bg, 2, 255)
        bin_totals = [t + a for t, a in zip(bin_totals, bareas)]
    ref = IoUMetric.total_area_to_metrics(
        *totals, metrics=['mIoU', 'mDice', 'mFscore'])
    for key in ('IoU', 'Acc', 'Dice', 'Fscore', 'Precision', 'Recall'):
        np.testing.assert_allclose(ours['per_class'][key], ref[key],
                                   rtol=1e-6)
    assert ours['aAcc'] == pytest.approx(float(ref['aAcc']))
    assert ours['mIoU'] == pytest.approx(float(np.nanmean(ref['IoU'])))
    bref = IoUMetric.total_area_to_metrics(
        *bin_totals, metrics=['mIoU', 'mDice', 'mFscore'])
    assert ours['acc'] == pytest.approx(float(bref['aAcc']))
    assert ours['iou'] == pytest.approx(float(bref['IoU'][1]))
    assert ours['dice'] == pytest.approx(float(bref['Dice'][1]))
    assert ours['f1'] == pytest.approx(float(bref['Fscore'][1]))
