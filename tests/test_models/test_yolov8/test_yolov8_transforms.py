# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Letterbox, centred random affine and probabilistic MixUp of the YOLOv8
baseline."""
import numpy as np
import pytest
import torch
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes


def _results(h=100, w=200, boxes=((20., 10., 120., 80.), ), labels=(1, )):
    img = np.random.RandomState(0).randint(0, 255, (h, w, 3)).astype(
        np.uint8)
    return dict(
        img=img, img_shape=(h, w), ori_shape=(h, w),
        gt_bboxes=HorizontalBoxes(
            torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)),
        gt_bboxes_labels=np.array(labels, dtype=np.int64),
        gt_ignore_flags=np.zeros(len(labels), dtype=bool))


def test_letter_resize_keeps_ratio_and_records_padding():
    t = TRANSFORMS.build(dict(type='LetterResize', scale=128))
    r = t(_results())
    assert r['img'].shape == (128, 128, 3)
    assert r['img_shape'] == (128, 128)
    np.testing.assert_allclose(r['letterbox_pad'], [32, 32, 0, 0])
    assert r['scale_factor'] == pytest.approx((0.64, 0.64))
    assert (r['img'][:32] == 114).all() and (r['img'][-32:] == 114).all()
    np.testing.assert_allclose(r['gt_bboxes'].tensor.numpy(),
                               [[12.8, 38.4, 76.8, 83.2]], rtol=1e-5)


def test_letter_resize_no_scale_up_centres_small_images():
    t = TRANSFORMS.build(
        dict(type='LetterResize', scale=(128, 96), allow_scale_up=False))
    r = t(_results(h=32, w=64, boxes=((0., 0., 64., 32.), )))
    assert r['img'].shape == (96, 128, 3)
    np.testing.assert_allclose(r['letterbox_pad'], [32, 32, 32, 32])
    assert r['scale_factor'] == (1.0, 1.0)
    np.testing.assert_allclose(r['gt_bboxes'].tensor.numpy(),
                               [[32., 32., 96., 64.]])


def test_letter_resize_bad_scale():
    with pytest.raises(ValueError, match='scale'):
        TRANSFORMS.build(dict(type='LetterResize', scale=(1, 2, 3)))


def test_random_affine_crops_the_centre_of_a_mosaic_canvas():
    t = TRANSFORMS.build(
        dict(type='YOLOv8RandomAffine', img_scale=(160, 160),
             scaling_ratio_range=(1.0, 1.0), max_translate_ratio=0.0))
    r = t(_results(h=320, w=320,
                   boxes=((150., 150., 170., 170.), (0., 0., 30., 30.)),
                   labels=(0, 2)))
    assert r['img'].shape == (160, 160, 3)
    # the centre box survives shifted by -80; the corner box is outside
    np.testing.assert_allclose(r['gt_bboxes'].tensor.numpy(),
                               [[70., 70., 90., 90.]], atol=1e-4)
    assert r['gt_bboxes_labels'].tolist() == [0]
    assert r['gt_ignore_flags'].tolist() == [False]


def test_random_affine_random_boxes_stay_inside():
    np.random.seed(0)
    t = TRANSFORMS.build(dict(type='YOLOv8RandomAffine', img_scale=(96, 64)))
    for _ in range(10):
        r = t(_results(boxes=((20., 10., 120., 80.), (150., 20., 190., 90.)),
                       labels=(0, 1)))
        assert r['img'].shape == (64, 96, 3)
        b = r['gt_bboxes'].tensor
        assert len(b) == len(r['gt_bboxes_labels'])
        if len(b):
            assert (b[:, 0::2] >= 0).all() and (b[:, 0::2] <= 96).all()
            assert (b[:, 1::2] >= 0).all() and (b[:, 1::2] <= 64).all()
            assert ((b[:, 2:] - b[:, :2]) > 2).all()


class _FakeDataset:

    def __init__(self, n):
        self.items = [_results(boxes=((10., 10., 60., 60.), ), labels=(4, ))
                      for _ in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_mixup_probability():
    np.random.seed(0)
    dataset = _FakeDataset(3)
    never = TRANSFORMS.build(
        dict(type='YOLOv8MixUp', prob=0.0, img_scale=(200, 100)))
    assert all(never.get_indexes(dataset) == [] for _ in range(20))
    r = never(dict(_results(), mix_results=[]))
    assert r['gt_bboxes_labels'].tolist() == [1]
    always = TRANSFORMS.build(
        dict(type='YOLOv8MixUp', prob=1.0, img_scale=(200, 100),
             ratio_range=(1.0, 1.0)))
    idx = always.get_indexes(dataset)
    assert len(idx) == 1 and 0 <= idx[0] < 3
    r = always(dict(_results(), mix_results=[dataset[idx[0]]]))
    assert sorted(r['gt_bboxes_labels'].tolist()) == [1, 4]
    sometimes = TRANSFORMS.build(
        dict(type='YOLOv8MixUp', prob=0.15, img_scale=(200, 100)))
    rate = np.mean([len(sometimes.get_indexes(dataset)) for _ in range(400)])
    assert 0.08 < rate < 0.22
    with pytest.raises(ValueError, match='prob'):
        TRANSFORMS.build(dict(type='YOLOv8MixUp', prob=1.5))
