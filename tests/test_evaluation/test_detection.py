# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import contextlib
import io
import json

import numpy as np
import pytest

from imdd_mm.evaluation.functional import (average_best_iou, box_iou,
                                           build_coco_gt,
                                           build_coco_results,
                                           coco_box_metrics, masks_to_boxes)


def two_blob_mask():
    m = np.zeros((1, 10, 12), bool)
    m[0, 1:3, 1:4] = True      # rows 1-2, cols 1-3
    m[0, 3, 4] = True          # diagonal neighbour: same component
    m[0, 6:9, 8:11] = True     # second component
    return m


def test_masks_to_boxes_modes():
    masks = np.concatenate([two_blob_mask(), np.zeros((1, 10, 12), bool)])
    boxes, index = masks_to_boxes(masks, 'mask')
    assert boxes.tolist() == [[1, 1, 11, 9]]  # x1 = max col + 1
    assert index.tolist() == [0]  # empty mask -> no box
    boxes, index = masks_to_boxes(masks, 'components')
    assert sorted(boxes.tolist()) == [[1, 1, 5, 4], [8, 6, 11, 9]]
    assert index.tolist() == [0, 0]
    with pytest.raises(ValueError, match='box_mode'):
        masks_to_boxes(masks, 'boxes')


def test_box_iou_and_avg_iou_toy():
    a = np.array([[0, 0, 2, 2]])
    b = np.array([[1, 0, 3, 2], [0, 0, 2, 2]])
    np.testing.assert_allclose(box_iou(a, b), [[1 / 3, 1.0]])
    gts = [dict(bboxes=np.array([[0, 0, 2, 2], [10, 10, 12, 12]]),
                labels=np.array([0, 1]))]
    preds = [dict(bboxes=np.array([[1, 0, 3, 2], [0, 0, 2, 2],
                                   [10, 10, 12, 12]]),
                  scores=np.array([0.9, 0.1, 0.8]),
                  labels=np.array([0, 0, 0]))]
    # gt0: best same-class pred above 0.3 is IoU 1/3; gt1: wrong class -> 0
    assert average_best_iou(gts, preds, 0.3) == pytest.approx(1 / 6)
    assert average_best_iou(gts, preds, 0.0) == pytest.approx(0.5)
    assert average_best_iou(gts, preds, 0.3, class_agnostic=True) == \
        pytest.approx((1 / 3 + 1) / 2)


def test_coco_perfect_and_empty():
    gts = [dict(bboxes=np.array([[0, 0, 10, 10]]), labels=np.array([0]))]
    perfect = [dict(bboxes=np.array([[0, 0, 10, 10]]), scores=[0.9],
                    labels=[0])]
    out = coco_box_metrics(gts, perfect, num_classes=1)
    assert out['mAP_50'] == pytest.approx(1.0)
    assert out['mAP_75'] == pytest.approx(1.0)
    # IoU 0.6: a hit at 0.5, a miss at 0.75
    shifted = [dict(bboxes=np.array([[0, 0, 10, 6]]), scores=[0.9],
                    labels=[0])]
    out = coco_box_metrics(gts, shifted, num_classes=1)
    assert out['mAP_50'] == pytest.approx(1.0)
    assert out['mAP_75'] == 0.0
    none = [dict(bboxes=np.zeros((0, 4)), scores=[], labels=[])]
    assert coco_box_metrics(gts, none, 1)['mAP_50'] == 0.0


def test_coco_equals_pycocotools_on_files(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    rng = np.random.default_rng(0)
    gts, preds = [], []
    for _ in range(6):
        k = int(rng.integers(0, 4))
        xy = rng.uniform(0, 80, (k, 2))
        wh = rng.uniform(5, 30, (k, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        labels = rng.integers(0, 3, k)
        gts.append(dict(bboxes=boxes, labels=labels))
        m = k + int(rng.integers(0, 3))
        jitter = rng.normal(0, 3, (m, 4))
        base = np.concatenate([boxes, np.tile([[10, 10, 30, 30]],
                                              (m - k, 1))])
        preds.append(dict(bboxes=base + jitter, scores=rng.random(m),
                          labels=np.concatenate(
                              [labels, rng.integers(0, 3, m - k)])))
    ours = coco_box_metrics(gts, preds, num_classes=3)
    gt_file, dt_file = tmp_path / 'gt.json', tmp_path / 'dt.json'
    gt_file.write_text(json.dumps(build_coco_gt(gts, 3)))
    dt_file.write_text(json.dumps(build_coco_results(preds)))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_file))
        ev = COCOeval(coco, coco.loadRes(str(dt_file)), 'bbox')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ours['mAP'] == pytest.approx(ev.stats[0], abs=1e-12)
    assert ours['mAP_50'] == pytest.approx(ev.stats[1], abs=1e-12)
    assert ours['mAP_75'] == pytest.approx(ev.stats[2], abs=1e-12)
    assert 0 < ours['mAP_50'] < 1
