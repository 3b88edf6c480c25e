# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""IMDDCocoDataset / PackIMDDInputs / IMDDCocoSegDataset on a tiny COCO
file in the converters' output format, written to disk."""
import json

import cv2
import imdd_mm  # noqa: F401
import numpy as np
import pytest
from mmdet.registry import DATASETS
from mmdet.utils import register_all_modules
from mmengine.registry import DefaultScope
from mmseg.registry import DATASETS as SEG_DATASETS
from pycocotools import mask as mask_utils


def _rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


@pytest.fixture
def coco_dir(tmp_path):
    """3 images: a crack (RLE), a scratch (polygon), a normal one."""
    root = tmp_path / 'src'
    (root / 'imgs').mkdir(parents=True)
    images, anns = [], []
    for i, name in enumerate(['a.png', 'b.png', 'c.png']):
        cv2.imwrite(str(root / 'imgs' / name),
                    np.full((20, 30, 3), 60 * i, np.uint8))
    crack = np.zeros((20, 30), bool)
    crack[2:8, 3:12] = True
    common = dict(width=30, height=20, source='fake', license='x',
                  split='train')
    images.append(dict(id=1, file_name='imgs/a.png', is_normal=False,
                       image_label=2, caption='a crack on steel',
                       caption_nouns=['crack', 'steel'],
                       original_path='a.png', **common))
    images.append(dict(id=2, file_name='imgs/b.png', is_normal=False,
                       image_label=1, caption='a scratch',
                       caption_nouns=['scratch'], original_path='b.png',
                       **common))
    images.append(dict(id=3, file_name='imgs/c.png', is_normal=True,
                       image_label=None, caption='a defect-free surface',
                       caption_nouns=['surface'], original_path='c.png',
                       **common))
    anns.append(dict(id=1, image_id=1, category_id=2, segmentation=_rle(crack),
                     area=int(crack.sum()), bbox=[3, 2, 9, 6], iscrowd=0))
    anns.append(dict(id=2, image_id=2, category_id=1,
                     segmentation=[[10, 10, 20, 10, 20, 15, 10, 15]],
                     area=50, bbox=[10, 10, 10, 5], iscrowd=0))
    cats = [dict(id=1, name='scratch', supercategory='steel'),
            dict(id=2, name='crack', supercategory='steel')]
    (tmp_path / 'annotations').mkdir()
    with open(tmp_path / 'annotations' / 'train.json', 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=cats), f)
    return tmp_path


PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True,
         poly2mask=True),
    dict(type='PackIMDDInputs'),
]


def test_dataset_reads_converter_fields(coco_dir):
    register_all_modules()
    ds = DATASETS.build(
        dict(type='IMDDCocoDataset', data_root=str(coco_dir),
             ann_file='annotations/train.json',
             data_prefix=dict(img='src/'), pipeline=PIPELINE))
    # classes from the file's categories (id order); normal image kept
    assert ds.metainfo['classes'] == ('scratch', 'crack')
    assert len(ds) == 3
    infos = [ds.get_data_info(i) for i in range(3)]
    assert infos[0]['caption_nouns'] == ['crack', 'steel']
    assert infos[0]['image_label'] == 1  # category id 2 -> label 1
    assert infos[2]['is_normal'] and infos[2]['image_label'] == -1
    assert infos[2]['instances'] == []

    packed = ds[0]
    meta = packed['data_samples'].metainfo
    assert meta['caption'] == 'a crack on steel'
    assert meta['caption_nouns'] == ['crack', 'steel']
    assert meta['is_normal'] is False and meta['source'] == 'fake'
    assert meta['image_label'] == 1
    gt = packed['data_samples'].gt_instances
    assert gt.labels.tolist() == [1]
    assert gt.masks.to_ndarray().sum() == 54
    normal = ds[2]['data_samples']
    assert len(normal.gt_instances) == 0 and normal.metainfo['is_normal']


def test_class_order_follows_metainfo(coco_dir):
    register_all_modules()
    ds = DATASETS.build(
        dict(type='IMDDCocoDataset', data_root=str(coco_dir),
             ann_file='annotations/train.json',
             metainfo=dict(classes=('crack', 'scratch')),
             data_prefix=dict(img='src/'), pipeline=PIPELINE))
    assert ds[0]['data_samples'].gt_instances.labels.tolist() == [0]
    assert ds[1]['data_samples'].gt_instances.labels.tolist() == [1]
    with pytest.raises(ValueError, match='train.json.*dent'):
        DATASETS.build(
            dict(type='IMDDCocoDataset', data_root=str(coco_dir),
                 ann_file='annotations/train.json',
                 metainfo=dict(classes=('crack', 'dent')),
                 data_prefix=dict(img='src/'), pipeline=PIPELINE))


def test_seg_dataset_rasterises_masks(coco_dir):
    with DefaultScope.overwrite_default_scope('mmseg'):
        ds = SEG_DATASETS.build(
            dict(type='IMDDCocoSegDataset', data_root=str(coco_dir),
                 ann_file='annotations/train.json',
                 data_prefix=dict(img_path='src/'),
                 pipeline=[
                     dict(type='LoadImageFromFile'),
                     dict(type='LoadIMDDSemSegAnnotations'),
                     dict(type='PackSegInputs')
                 ]))
    assert ds.metainfo['classes'] == ('defect-free surface', 'scratch',
                                      'crack')
    seg = ds[0]['data_samples'].gt_sem_seg.data[0].numpy()
    assert set(np.unique(seg)) == {0, 2} and (seg == 2).sum() == 54
    seg = ds[1]['data_samples'].gt_sem_seg.data[0].numpy()
    assert set(np.unique(seg)) == {0, 1}
    assert ds[2]['data_samples'].gt_sem_seg.data.sum() == 0
