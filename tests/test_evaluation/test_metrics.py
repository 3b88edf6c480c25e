# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The registered metrics through mmengine's Evaluator on DetDataSamples."""
import contextlib
import copy
import io

import numpy as np
import pytest
import torch
from mmdet.registry import METRICS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData, PixelData

from imdd_mm.evaluation.functional import (aupro_exact, auroc_exact,
                                           binary_seg_counts,
                                           binary_seg_counts_at,
                                           coco_box_metrics, image_auroc,
                                           masks_to_boxes, seg_metrics)
from imdd_mm.evaluation.metrics import anomaly_metric

CLASSES = ('crack', 'scratch', 'stain')
H, W = 24, 32


def make_sample(i, rng, *, normal=False, image_label=None, box_only=False,
                n_inst=None):
    s = DetDataSample(metainfo=dict(img_id=i, img_path=f'img_{i}.png',
                                    ori_shape=(H, W), is_normal=normal,
                                    image_label=image_label))
    k = 0 if normal else (n_inst if n_inst is not None else
                          int(rng.integers(1, 4)))
    masks = np.zeros((k, H, W), bool)
    for j in range(k):
        y, x = rng.integers(0, H - 6), rng.integers(0, W - 6)
        masks[j, y:y + int(rng.integers(2, 6)),
              x:x + int(rng.integers(2, 6))] = True
        if rng.random() < 0.5:  # a second component
            masks[j, 0:2, j * 3:j * 3 + 2] = True
    labels = torch.as_tensor(rng.integers(0, 3, k), dtype=torch.long)
    boxes, index = masks_to_boxes(masks, 'mask')
    gt = InstanceData(labels=labels, bboxes=torch.as_tensor(boxes))
    if not box_only:
        gt.masks = BitmapMasks(masks.astype(np.uint8), H, W)
    s.gt_instances = gt
    # predictions: noisy copies of the ground truth plus a false positive
    pm = np.concatenate([masks, np.zeros((1, H, W), bool)])
    pm[-1, H - 4:, W - 4:] = True
    pm[:k] &= rng.random((k, H, W)) > 0.1  # drop some pixels
    plabels = torch.cat([labels, torch.tensor([0])])
    pscores = torch.as_tensor(rng.uniform(0.2, 1.0, k + 1),
                              dtype=torch.float32)
    pboxes, _ = masks_to_boxes(pm, 'mask')
    s.pred_instances = InstanceData(masks=torch.from_numpy(pm),
                                    labels=plabels, scores=pscores,
                                    bboxes=torch.as_tensor(pboxes))
    sem = np.zeros((H, W), np.int64)
    for m, lab in zip(pm, plabels.tolist()):
        sem[m] = lab + 1
    s.pred_sem_seg = PixelData(sem_seg=torch.from_numpy(sem)[None])
    gt_any = masks.any(0)
    score = np.clip(rng.beta(2, 5, (H, W)) + 0.5 * gt_any * rng.random(
        (H, W)), 0, 1).astype(np.float32)
    s.pred_score_map = PixelData(data=torch.from_numpy(score)[None])
    s.pred_image_score = float(score.max())
    s.pred_image_label = -1 if k == 0 else int(labels[0])
    return s, masks, labels.numpy(), sem, score


def run_evaluator(metric, samples):
    evaluator = Evaluator([metric])
    evaluator.dataset_meta = dict(classes=CLASSES)
    for start in range(0, len(samples), 3):
        evaluator.process(data_samples=samples[start:start + 3])
    return evaluator.evaluate(len(samples))


@pytest.fixture(scope='module')
def dataset():
    rng = np.random.default_rng(0)
    return [make_sample(i, rng, normal=(i % 4 == 0)) for i in range(10)]


def test_classification_metric():
    rng = np.random.default_rng(1)
    samples = []
    s, *_ = make_sample(0, rng, normal=True)  # pred -1: correct
    samples.append(s)
    s, *_ = make_sample(1, rng, n_inst=2)
    s.gt_instances.labels = torch.tensor([1, 2])
    s.pred_image_label = 2  # one of the classes: correct ('any')
    samples.append(s)
    s, *_ = make_sample(2, rng, image_label=0, n_inst=0)
    s.pred_image_label = 1  # classification-only source, wrong
    samples.append(s)
    s, *_ = make_sample(3, rng, n_inst=1)
    s.gt_instances.labels = torch.tensor([0])
    s.pred_image_label = -1  # missed defect
    samples.append(s)
    metric = METRICS.build(dict(type='IMDDClassificationMetric'))
    out = run_evaluator(metric, samples)
    assert out['cls/accuracy'] == pytest.approx(2 / 4)
    assert out['cls/binary_accuracy'] == pytest.approx(3 / 4)
    # per class, by name: class 0 appears in images 2 and 3 (both wrong),
    # classes 1 and 2 in image 1 (right), normal in image 0 (right)
    assert out[f'cls/accuracy_{CLASSES[0]}'] == 0.0
    assert out[f'cls/accuracy_{CLASSES[1]}'] == 1.0
    assert out[f'cls/accuracy_{CLASSES[2]}'] == 1.0
    assert out['cls/accuracy_normal'] == 1.0
    # defect classes only: (0 + 1 + 1) / 3, the normal class left out
    assert out['cls/defect_class_accuracy'] == pytest.approx(2 / 3)
    del samples[0].pred_image_label
    with pytest.raises(KeyError, match='img_0.png'):
        run_evaluator(METRICS.build(dict(type='IMDDClassificationMetric')),
                      samples)


def test_classification_unknown_image_label_falls_back_to_instances():
    """IMDDCocoDataset packs ``image_label=-1`` ("normal or unknown") for
    every image whose converter left it unset: a defective image with
    instances must then be scored by its instances, not as normal."""
    rng = np.random.default_rng(2)
    samples = []
    for i, (cls, pred) in enumerate([(2, 2), (1, 1), (0, -1)]):
        s, *_ = make_sample(i, rng, image_label=-1, n_inst=1)
        s.gt_instances.labels = torch.tensor([cls])
        s.pred_image_label = pred
        samples.append(s)
    s, *_ = make_sample(3, rng, normal=True, image_label=-1)
    s.pred_image_label = -1
    samples.append(s)
    out = run_evaluator(
        METRICS.build(dict(type='IMDDClassificationMetric')), samples)
    # correct: 2, 1 and the normal image; wrong: the missed class-0 defect
    assert out['cls/accuracy'] == pytest.approx(3 / 4)


def test_seg_metric_matches_functional(dataset):
    metric = METRICS.build(dict(type='DefectSegMetric', per_class=True))
    out = run_evaluator(metric, [d[0] for d in dataset])
    gts = []
    for _, masks, labels, _, _ in dataset:
        g = np.zeros((H, W), np.int64)
        for m, lab in zip(masks, labels):
            g[m] = lab + 1
        gts.append(g)
    ref = seg_metrics([d[3] for d in dataset], gts, len(CLASSES) + 1)
    for key in ('acc', 'f1', 'iou', 'dice', 'aAcc', 'mIoU', 'mDice'):
        assert out[f'seg/{key}'] == pytest.approx(ref[key]), key
    assert out['seg/IoU_crack'] == pytest.approx(ref['per_class']['IoU'][1])
    assert 0 < out['seg/iou'] < 1


def test_seg_metric_from_score_map(dataset):
    metric = METRICS.build(dict(type='DefectSegMetric',
                                pred_source='score_map', score_thr=0.6))
    out = run_evaluator(metric, [d[0] for d in dataset])
    tp = fp = fn = 0
    for _, masks, _, _, score in dataset:
        p, g = score >= 0.6, masks.any(0)
        tp += (p & g).sum()
        fp += (p & ~g).sum()
        fn += (~p & g).sum()
    assert out['seg/iou'] == pytest.approx(tp / (tp + fp + fn))
    assert 'seg/mIoU' not in out


def test_seg_metric_threshold_sweep(dataset):
    """``thr_sweep``: IoU / F1 of ``score_map >= t`` at every t, counted
    independently here, and the threshold of the best IoU."""
    thrs = [0.8, 0.2, 0.5, 0.6]
    metric = METRICS.build(dict(type='DefectSegMetric', thr_sweep=thrs))
    out = run_evaluator(metric, [d[0] for d in dataset])
    ious = {}
    for t in thrs:
        tp = fp = fn = 0
        for _, masks, _, _, score in dataset:
            p, g = score >= t, masks.any(0)
            tp += (p & g).sum()
            fp += (p & ~g).sum()
            fn += (~p & g).sum()
        ious[t] = tp / (tp + fp + fn)
        assert out[f'seg/iou@{t:g}'] == pytest.approx(ious[t]), t
        assert out[f'seg/f1@{t:g}'] == pytest.approx(
            2 * tp / (2 * tp + fp + fn)), t
    best = max(thrs, key=lambda t: (ious[t], -t))
    assert out['seg/best_iou_thr'] == best
    assert out['seg/best_iou'] == pytest.approx(ious[best])
    # the sweep does not change the sem_seg metrics
    plain = run_evaluator(METRICS.build(dict(type='DefectSegMetric')),
                          [d[0] for d in dataset])
    assert out['seg/iou'] == pytest.approx(plain['seg/iou'])
    with pytest.raises(ValueError, match='distinct'):
        METRICS.build(dict(type='DefectSegMetric', thr_sweep=[0.5, 0.5]))
    # counts of the one-pass sweep = the per-threshold counts
    rng = np.random.default_rng(0)
    score = rng.random((7, 9))
    gt = rng.random((7, 9)) > 0.6
    ignore = rng.random((7, 9)) > 0.9
    got = binary_seg_counts_at(score, gt, [0.7, 0.1, 0.4], ignore=ignore)
    for row, t in zip(got, [0.7, 0.1, 0.4]):
        np.testing.assert_array_equal(
            row, binary_seg_counts(score >= t, gt, ignore=ignore))


@pytest.mark.parametrize('box_mode', ['mask', 'components'])
def test_box_metric_equals_pycocotools_files(dataset, box_mode, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    prefix = str(tmp_path / 'det')
    metric = METRICS.build(dict(type='MaskBoxDetectionMetric',
                                box_mode=box_mode, outfile_prefix=prefix))
    out = run_evaluator(metric, [d[0] for d in dataset])
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(prefix + '.gt.json')
        ev = COCOeval(coco, coco.loadRes(prefix + '.bbox.json'), 'bbox')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert out['det/mAP_50'] == pytest.approx(ev.stats[1], abs=1e-12)
    assert out['det/mAP_75'] == pytest.approx(ev.stats[2], abs=1e-12)
    assert 0 < out['det/mAP_50'] <= 1
    assert 0 < out['det/avg_iou'] <= 1
    n_gt = sum(len(masks_to_boxes(d[1], box_mode)[0]) for d in dataset)
    assert len(coco.dataset['annotations']) == n_gt


def test_box_metric_box_only_sources(dataset):
    """GT from gt_instances.bboxes without masks; YOLO-style predictions
    with boxes only."""
    rng = np.random.default_rng(3)
    samples = []
    for i in range(4):
        s, masks, labels, _, _ = make_sample(i, rng, box_only=True)
        del s.pred_instances.masks
        samples.append(s)
    metric = METRICS.build(dict(type='MaskBoxDetectionMetric'))
    out = run_evaluator(metric, samples)
    gts = [dict(bboxes=s.gt_instances.bboxes.numpy(),
                labels=s.gt_instances.labels.numpy()) for s in samples]
    preds = [dict(bboxes=s.pred_instances.bboxes.numpy(),
                  scores=s.pred_instances.scores.numpy(),
                  labels=s.pred_instances.labels.numpy()) for s in samples]
    ref = coco_box_metrics(gts, preds, len(CLASSES))
    assert out['det/mAP_50'] == pytest.approx(ref['mAP_50'])


def test_anomaly_metric_matches_exact(dataset):
    metric = METRICS.build(dict(type='AnomalyMetric'))
    out = run_evaluator(metric, [d[0] for d in dataset])
    scores = np.stack([d[4] for d in dataset])
    masks = np.stack([d[1].any(0) for d in dataset])
    assert abs(out['anomaly/P-AUROC'] - auroc_exact(scores, masks)) < 1e-4
    assert abs(out['anomaly/AUPRO'] - aupro_exact(scores, masks)) < 1e-4
    labels = [i % 4 != 0 for i in range(len(dataset))]
    assert out['anomaly/I-AUROC'] == pytest.approx(
        image_auroc(scores.reshape(len(dataset), -1).max(1), labels))
    # state was reset: a second evaluation sees only new samples
    out2 = run_evaluator(metric, [d[0] for d in dataset[:4]])
    assert out2['anomaly/P-AUROC'] == pytest.approx(auroc_exact(
        scores[:4], masks[:4]), abs=1e-4)


def test_anomaly_metric_errors(dataset):
    s = copy.deepcopy(dataset[1][0])
    s.gt_instances.masks = BitmapMasks(np.zeros((len(s.gt_instances), 8, 8),
                                                np.uint8), 8, 8)
    with pytest.raises(ValueError, match='img_1.png'):
        run_evaluator(METRICS.build(dict(type='AnomalyMetric')), [s])
    s = copy.deepcopy(dataset[1][0])
    del s.pred_score_map
    with pytest.raises(KeyError, match='pred_score_map'):
        run_evaluator(METRICS.build(dict(type='AnomalyMetric')), [s])


def test_anomaly_metric_infinite_and_nan_scores(dataset):
    """+inf on every defect pixel is a perfect ranking (it used to fall in
    the lowest bin); a NaN names the image."""
    samples = []
    for d in dataset:
        s = copy.deepcopy(d[0])
        gt = d[1].any(0)
        score = np.where(gt, np.inf, 0.2).astype(np.float32)
        s.pred_score_map = PixelData(data=torch.from_numpy(score)[None])
        s.pred_image_score = float(score.max())
        samples.append(s)
    out = run_evaluator(METRICS.build(dict(type='AnomalyMetric')), samples)
    assert out['anomaly/P-AUROC'] == 1.0
    assert out['anomaly/AUPRO'] == pytest.approx(1.0, abs=1e-12)
    assert out['anomaly/I-AUROC'] == 1.0
    bad = copy.deepcopy(dataset[2][0])
    bad.pred_score_map.data[0, 3, 5] = float('nan')
    with pytest.raises(ValueError, match=r'img_2\.png.*NaN.*y=3, x=5'):
        run_evaluator(METRICS.build(dict(type='AnomalyMetric')), [bad])
    bad = copy.deepcopy(dataset[2][0])
    bad.pred_image_score = float('nan')
    with pytest.raises(ValueError, match=r'img_2\.png.*pred_image_score'):
        run_evaluator(METRICS.build(dict(type='AnomalyMetric')), [bad])


def test_anomaly_metric_distributed_padding(dataset, monkeypatch):
    """Two ranks with DefaultSampler padding: rank 0 gets samples 0,2,4,
    rank 1 gets 1,3 and the padded copy of 0. Summed states must equal a
    single process on the 5 samples."""
    samples = [d[0] for d in dataset[:5]]
    single = METRICS.build(dict(type='AnomalyMetric'))
    single.process(None, [s.to_dict() for s in samples])
    ref = single.compute_from_states([single.local_state(5)])

    states = []
    for rank, idx in ((0, [0, 2, 4]), (1, [1, 3, 0])):
        monkeypatch.setattr(anomaly_metric, 'get_dist_info',
                            lambda r=rank: (r, 2))
        m = METRICS.build(dict(type='AnomalyMetric'))
        m.process(None, [samples[i].to_dict() for i in idx])
        states.append(m.local_state(5))
    assert len(states[1]['scores']) == 2  # the padded sample was dropped
    merged = single.compute_from_states(states)
    for key, value in ref.items():
        assert merged[key] == pytest.approx(value, abs=1e-12)


def build_dataset(num: int) -> list:
    """Deterministic DetDataSamples (shared with the distributed test)."""
    rng = np.random.default_rng(7)
    return [make_sample(i, rng, normal=(i % 4 == 0))[0] for i in range(num)]


def evaluate_all(samples, size: int, batch: int = 2) -> dict:
    metrics = [METRICS.build(dict(type=t)) for t in (
        'AnomalyMetric', 'DefectSegMetric', 'MaskBoxDetectionMetric',
        'IMDDClassificationMetric')]
    evaluator = Evaluator(metrics)
    evaluator.dataset_meta = dict(classes=CLASSES)
    for start in range(0, len(samples), batch):
        evaluator.process(data_samples=samples[start:start + batch])
    return evaluator.evaluate(size)


def test_mmseg_samples_through_mmseg_registry():
    """mmseg path: SegDataSample with ``data`` label maps, classes that
    name the background, metrics built from mmseg's registry."""
    from mmseg.registry import METRICS as SEG_METRICS
    from mmseg.structures import SegDataSample
    rng = np.random.default_rng(4)
    samples, preds, gts, scores = [], [], [], []
    for i in range(4):
        gt = np.zeros((H, W), np.int64)
        if i:
            gt[i:i + 6, 2 * i:2 * i + 5] = i % 3 + 1
        pred = gt.copy()
        pred[0, :4] = 1
        score = np.clip(rng.random((H, W)) * 0.5 + 0.5 * (gt > 0), 0, 1)
        s = SegDataSample(metainfo=dict(img_path=f'seg_{i}.png',
                                        ori_shape=(H, W)))
        s.gt_sem_seg = PixelData(data=torch.from_numpy(gt)[None])
        s.pred_sem_seg = PixelData(data=torch.from_numpy(pred)[None])
        s.pred_score_map = PixelData(data=torch.from_numpy(
            score.astype(np.float32))[None])
        samples.append(s)
        preds.append(pred)
        gts.append(gt)
        scores.append(score)
    seg = SEG_METRICS.build(dict(type='DefectSegMetric',
                                 background_in_classes=True))
    anomaly = SEG_METRICS.build(dict(type='AnomalyMetric'))
    evaluator = Evaluator([seg, anomaly])
    evaluator.dataset_meta = dict(classes=('defect-free',) + CLASSES)
    evaluator.process(data_samples=samples)
    out = evaluator.evaluate(len(samples))
    ref = seg_metrics(preds, gts, len(CLASSES) + 1)
    assert out['seg/mIoU'] == pytest.approx(ref['mIoU'])
    assert out['seg/iou'] == pytest.approx(ref['iou'])
    masks = np.stack(gts) > 0
    assert abs(out['anomaly/P-AUROC'] - auroc_exact(np.stack(scores),
                                                    masks)) < 1e-4
    # image 0 has no defect: image AUROC is defined
    assert out['anomaly/I-AUROC'] == pytest.approx(image_auroc(
        [s.max() for s in scores], [0, 1, 1, 1]))


def test_box_metric_empty_gt_mask_keeps_annotated_box():
    rng = np.random.default_rng(5)
    s, masks, labels, _, _ = make_sample(0, rng, n_inst=2)
    m = masks.copy()
    m[1] = False  # box-only annotation loaded as an empty mask
    s.gt_instances.masks = BitmapMasks(m.astype(np.uint8), H, W)
    s.gt_instances.bboxes = torch.tensor([[0., 0., 1., 1.],
                                          [3., 4., 9., 12.]])
    metric = METRICS.build(dict(type='MaskBoxDetectionMetric'))
    gt = metric._gt(s.to_dict())
    expected = masks_to_boxes(m[:1], 'mask')[0].tolist() + [[3, 4, 9, 12]]
    assert gt['bboxes'].tolist() == expected
    assert gt['labels'].tolist() == labels.tolist()
    metric = METRICS.build(dict(type='MaskBoxDetectionMetric',
                                gt_box_source='masks'))
    assert len(metric._gt(s.to_dict())['bboxes']) == 1
