# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Fixtures of the YOLOv8 tests: tiny model configs and a handful of real
NEU-DET images with their Pascal VOC boxes (read directly from the XML)."""
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import List

import imdd_mm  # noqa: F401  (compat patches first)
import mmcv
import numpy as np
import pytest
import torch

@pytest.fixture(autouse=True, scope='module')
def _mmdet_scope():
    """Build from mmdet's registries (as configs with default_scope do) and
    run single-threaded (faster than 2 threads on a shared 2-core box)."""
    imdd_mm.register_all_modules(init_default_scope=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


NEU_CLASSES = ('crazing', 'inclusion', 'patches', 'pitted_surface',
               'rolled-in_scale', 'scratches')


def tiny_model_cfg(num_classes: int = 6, widen: float = 0.0625) -> dict:
    """A ~0.1M-parameter YOLOv8 (same layout as n/s/m)."""
    common = dict(deepen_factor=0.33, widen_factor=widen,
                  last_stage_out_channels=1024)
    return dict(
        type='YOLOv8Detector',
        data_preprocessor=dict(
            type='DetDataPreprocessor', mean=[0., 0., 0.],
            std=[255., 255., 255.], bgr_to_rgb=True, pad_size_divisor=32,
            pad_value=114 / 255),
        backbone=dict(type='YOLOv8CSPDarknet', **common),
        neck=dict(type='YOLOv8PAFPN', **common),
        bbox_head=dict(
            type='YOLOv8Head', num_classes=num_classes,
            widen_factor=widen, last_stage_out_channels=1024),
        train_cfg=dict(assigner=dict(type='YOLOv8TaskAlignedAssigner',
                                     topk=10, alpha=0.5, beta=6.0)),
        test_cfg=dict(score_thr=0.001, nms=dict(type='nms',
                                                iou_threshold=0.7),
                      max_per_img=100))


def _read_voc(xml_path: Path) -> List[tuple]:
    root = ET.parse(xml_path).getroot()
    boxes = []
    for obj in root.iter('object'):
        name = obj.findtext('name').strip()
        bb = obj.find('bndbox')
        box = [float(bb.findtext(k).strip())
               for k in ('xmin', 'ymin', 'xmax', 'ymax')]
        boxes.append((NEU_CLASSES.index(name), box))
    return boxes


@pytest.fixture(scope='session')
def neu_samples(neu_det_root) -> List[dict]:
    """Six real NEU-DET images (one per class) as loaded mmdet results:
    ``img`` (H, W, 3) uint8 BGR, ``gt_bboxes`` (N, 4), ``gt_bboxes_labels``.
    """
    samples = []
    for cls in NEU_CLASSES:
        stem = f'{cls}_1'
        img_path = neu_det_root / 'IMAGES' / f'{stem}.jpg'
        xml_path = neu_det_root / 'ANNOTATIONS' / f'{stem}.xml'
        if not img_path.is_file() or not xml_path.is_file():
            pytest.skip(f'NEU-DET sample {img_path} missing')
        img = mmcv.imread(str(img_path), flag='color')
        objs = _read_voc(xml_path)
        samples.append(dict(
            img=img, img_path=str(img_path),
            gt_bboxes=np.array([b for _, b in objs], dtype=np.float32),
            gt_bboxes_labels=np.array([c for c, _ in objs],
                                      dtype=np.int64)))
    return samples
