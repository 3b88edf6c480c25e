# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""HTMLReportHook (``tools/test.py --report``) driven by a fake runner and
predicted ``DetDataSample``s."""
import base64
import re
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import HOOKS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData, PixelData

from imdd_mm.engine.hooks import HTMLReportHook
from imdd_mm.engine.hooks.html_report_hook import sample_to_report

H, W = 24, 32
CLASSES = ('scratch', 'crack', 'stain')


def _write_image(path, value, dtype=np.uint8):
    img = np.full((H, W), value, dtype)
    img[4:8, 4:8] = 0
    assert cv2.imwrite(str(path), img)
    return str(path)


def _sample(img_path, defective, score, gt_label=None, label_only=False):
    s = DetDataSample(metainfo=dict(
        img_path=img_path, img_id=0, ori_shape=(H, W), img_shape=(H, W),
        is_normal=not defective, caption='a scratch' if defective else ''))
    gt = InstanceData()
    if gt_label is not None and not label_only:
        m = np.zeros((1, H, W), np.uint8)
        m[0, 5:10, 6:20] = 1
        gt.masks = BitmapMasks(m, H, W)
        gt.labels = torch.tensor([gt_label])
        gt.bboxes = torch.tensor([[6., 5., 20., 10.]])
    else:
        gt.masks = BitmapMasks(np.zeros((0, H, W), np.uint8), H, W)
        gt.labels = torch.zeros(0, dtype=torch.long)
        gt.bboxes = torch.zeros(0, 4)
    s.gt_instances = gt
    pred = InstanceData()
    masks = torch.zeros(2, H, W, dtype=torch.bool)
    masks[0, 5:11, 6:21] = True
    masks[1, 15:20, 20:30] = True
    pred.masks = masks
    pred.labels = torch.tensor([0, 2])
    pred.scores = torch.tensor([score, 0.2])
    pred.bboxes = torch.tensor([[6., 5., 21., 11.], [20., 15., 30., 20.]])
    s.pred_instances = pred
    score_map = torch.zeros(1, H, W)
    score_map[0, 5:11, 6:21] = score
    s.pred_score_map = PixelData(data=score_map)
    s.pred_image_label = 0 if score >= 0.5 else -1
    s.pred_image_score = score
    return s


class _Logger:

    def __init__(self):
        self.records = []

    def info(self, msg):
        self.records.append(('info', msg))

    def warning(self, msg):
        self.records.append(('warning', msg))


class _Dataset(list):
    metainfo = dict(classes=CLASSES)


def _runner(vocabulary=None, n_images=8):
    """A runner whose model is DDP-wrapped (``.module``)."""
    head = SimpleNamespace(vocabulary=vocabulary)
    return SimpleNamespace(
        model=SimpleNamespace(module=SimpleNamespace(panoptic_head=head)),
        test_dataloader=SimpleNamespace(dataset=_Dataset(range(n_images))),
        cfg=SimpleNamespace(filename='/x/configs/stage2_tiny.py'),
        logger=_Logger())


@pytest.fixture
def images(tmp_path):
    tmp_path = tmp_path / 'imgs'
    tmp_path.mkdir()
    paths = {}
    for k in range(5):
        paths[f'defect_{k}'] = _write_image(tmp_path / f'defect_{k}.png',
                                            120 + k)
    for k in range(3):
        paths[f'good_{k}'] = _write_image(tmp_path / f'good_{k}.png',
                                          60 + k)
    # 16-bit source image: read unchanged and rescaled for display
    paths['deep'] = _write_image(tmp_path / 'deep.png', 4000, np.uint16)
    return paths


def _srcs(text):
    return re.findall(r'src="data:image/png;base64,([^"]*)"', text)


def test_report_written_with_metrics_curve_and_samples(images, tmp_path):
    out = tmp_path / 'out' / 'report.html'
    hook = HOOKS.build(dict(type='HTMLReportHook', out_file=str(out),
                            max_samples=5, title='tiny test'))
    assert isinstance(hook, HTMLReportHook)
    runner = _runner(vocabulary=None)
    hook.before_test(runner)
    batches = [
        [_sample(images['good_0'], False, 0.1),
         _sample(images['defect_0'], True, 0.9, gt_label=1)],
        [_sample(images['defect_1'], True, 0.8, gt_label=0),
         _sample(images['good_1'], False, 0.3)],
        # a classification-only defective image (no instances) counts as
        # defective, not as a normal image
        [_sample(images['defect_2'], True, 0.7, gt_label=2,
                 label_only=True),
         _sample(images['defect_3'], True, 0.6, gt_label=1)],
        [_sample(images['good_2'], False, 0.4)],
    ]
    for i, batch in enumerate(batches):
        hook.after_test_iter(runner, i, data_batch=None, outputs=batch)
    metrics = {'coco/segm_mAP': 0.5, 'coco/bbox_mAP': np.float32(0.25),
               'note': 'text', 'flag': True}
    hook.after_test_epoch(runner, metrics)

    assert out.is_file()
    text = out.read_text(encoding='utf-8')
    assert '<h1>tiny test</h1>' in text
    assert '<tr><td>coco/segm_mAP</td><td>0.5000</td></tr>' in text
    assert '<tr><td>coco/bbox_mAP</td><td>0.2500</td></tr>' in text
    assert 'note' not in text and '<td>flag</td>' not in text
    assert 'alt="Image-level ROC"' in text
    assert 'config: stage2_tiny.py; images evaluated: 8; ' \
        'vocabulary: scratch, crack, stain' in text
    # at most 3 defective (3/4 of 5) and 1 normal (1/4 of 5), in order
    shown = re.findall(r'<b>([^<]*)</b>', text)
    assert shown == ['imgs/good_0.png', 'imgs/defect_0.png',
                     'imgs/defect_1.png', 'imgs/defect_2.png']
    assert 'ground truth: crack; predicted: scratch (0.90)' in text
    assert 'ground truth: normal; predicted: normal (0.10)' in text
    assert 'caption: a scratch' in text
    srcs = _srcs(text)
    assert len(srcs) == 1 + 3 * 4
    for src in srcs[1:]:
        img = cv2.imdecode(np.frombuffer(base64.b64decode(src), np.uint8),
                           cv2.IMREAD_COLOR)
        assert img.shape == (H, W, 3)
    # the ground-truth panel of defect_0 shows its mask
    gt_panel = cv2.imdecode(
        np.frombuffer(base64.b64decode(srcs[1 + 3]), np.uint8),
        cv2.IMREAD_COLOR)
    assert not (gt_panel[7, 12] == 120).all()  # inside the mask: coloured
    assert (gt_panel[20, 2] == 120).all()  # outside: the image
    assert any('HTML report written' in m for _, m in runner.logger.records)


def test_vocabulary_from_head_and_bad_samples(images, tmp_path):
    out = tmp_path / 'report.html'
    hook = HTMLReportHook(out_file=str(out), max_samples=12)
    runner = _runner(vocabulary=['dent', 'rust', 'hole'])
    hook.before_test(runner)
    missing = _sample(str(tmp_path / 'gone.png'), True, 0.9, gt_label=0)
    deep = _sample(images['deep'], True, 0.95, gt_label=2)
    hook.after_test_iter(runner, 0, outputs=[missing, deep])
    hook.after_test_epoch(runner, {})
    text = out.read_text(encoding='utf-8')
    assert re.findall(r'<b>([^<]*)</b>', text) == ['imgs/deep.png']
    assert 'ground truth: hole; predicted: dent (0.95)' in text
    assert 'vocabulary: dent, rust, hole' in text
    # one class only (all defective): no ROC curve, but the report exists
    assert 'Image-level ROC' not in text
    warnings = [m for k, m in runner.logger.records if k == 'warning']
    assert len(warnings) == 1 and 'gone.png' in warnings[0]


def test_sample_to_report_reads_original_image(images):
    rep = sample_to_report(
        _sample(images['deep'], True, 0.9, gt_label=1), CLASSES)
    assert rep.image.shape == (H, W, 3) and rep.image.dtype == np.uint8
    assert rep.image.max() == 255 and rep.image.min() == 0  # rescaled
    assert rep.gt_masks.shape == (1, H, W) and rep.gt_labels == [1]
    assert rep.pred_masks.shape == (2, H, W)
    assert rep.pred_scores == pytest.approx([0.9, 0.2])
    assert rep.score_map.shape == (H, W)
    assert rep.image_label == 'scratch (0.90)'
    assert rep.name == 'imgs/deep.png' and rep.caption == 'a scratch'
    # instances below the score threshold are not drawn
    rep = sample_to_report(
        _sample(images['deep'], True, 0.9, gt_label=1), CLASSES, 0.3)
    assert rep.pred_scores == pytest.approx([0.9])
    assert rep.pred_masks.shape == (1, H, W) and rep.pred_labels == [0]
    assert rep.pred_boxes.shape == (1, 4)
    rep = sample_to_report(
        _sample(images['deep'], False, 0.1), CLASSES, 0.3)
    assert rep.pred_masks.shape == (0, H, W) and rep.pred_labels == []


def test_report_says_when_frozen_networks_are_random(images, tmp_path):
    out = tmp_path / 'report.html'
    hook = HOOKS.build(dict(type='HTMLReportHook', out_file=str(out)))
    runner = _runner(vocabulary=None)
    sources = {'backbone.vae': dict(kind='random', seed=0),
               'captioner.visual': dict(kind='open_clip', model='ViT-B-16',
                                        tag='openai')}
    runner.model.module.frozen_sources = lambda: sources
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, outputs=[
        _sample(images['defect_0'], True, 0.9, gt_label=1)])
    hook.after_test_epoch(runner, {'x/acc': 0.5})
    text = out.read_text(encoding='utf-8')
    assert 'class="warn">RANDOM FROZEN WEIGHTS: backbone.vae' in text
    assert 'captioner.visual: open_clip model=ViT-B-16 tag=openai' in text
    sources['backbone.vae'] = dict(kind='hub', id='org/sd')
    hook.after_test_epoch(runner, {'x/acc': 0.5})
    assert 'RANDOM FROZEN' not in out.read_text(encoding='utf-8')
