# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""AnomalyCocoDataset gives every image the object of its run for CLIP
prompts: from the "<object>/<defect>" layout (MVTec AD, VisA, pooled or
one category), from file_prefix, from the source, or as given."""
import json

import pytest
from mmengine.config import Config

from imdd_mm.models.anomaly import AnomalyCocoDataset


def write_coco(path, source, files, classes):
    images = [dict(id=i + 1, file_name=f, width=8, height=8,
                   is_normal=True, source=source, split='test',
                   image_label=None, caption='', caption_nouns=[])
              for i, f in enumerate(files)]
    cats = [dict(id=i + 1, name=c, supercategory='defect')
            for i, c in enumerate(classes)]
    path.write_text(json.dumps(dict(images=images, annotations=[],
                                    categories=cats)))
    return str(path)


@pytest.fixture
def mvtec_visa(tmp_path):
    mvtec = write_coco(
        tmp_path / 'mvtec.json', 'mvtec_ad',
        ['bottle/test/good/000.png', 'metal_nut/test/good/000.png'],
        ['bottle/broken_large', 'metal_nut/scratch'])
    visa = write_coco(tmp_path / 'visa.json', 'visa',
                      ['pcb1/Data/Images/Normal/0000.JPG'], ['pcb1/bad'])
    mt = write_coco(tmp_path / 'mt.json', 'magnetic_tile',
                    ['MT_Free/Imgs/a.jpg'], ['blowhole'])
    return tmp_path, mvtec, visa, mt


def build(root, ann, **kwargs):
    return AnomalyCocoDataset(
        ann_file=ann, data_root='', data_prefix=dict(img=str(root) + '/'),
        test_mode=True, pipeline=[], **kwargs)


def test_object_name_per_image(mvtec_visa):
    root, mvtec, visa, mt = mvtec_visa
    pooled = build(root, mvtec)
    assert [d['object_name'] for d in pooled] == ['bottle', 'metal nut']
    one = build(root, mvtec, file_prefix='metal_nut/')
    assert [d['object_name'] for d in one] == ['metal nut']
    assert build(root, visa)[0]['object_name'] == 'printed circuit board'
    assert build(root, mt)[0]['object_name'] == 'magnetic tile'
    given = build(root, mvtec, object_name='glass bottle')
    assert {d['object_name'] for d in given} == {'glass bottle'}


def test_object_name_reaches_the_data_samples(mvtec_visa, tmp_path):
    import numpy as np
    import cv2
    root, mvtec, _, _ = mvtec_visa
    for f in ('bottle/test/good/000.png', 'metal_nut/test/good/000.png'):
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / f), np.zeros((8, 8, 3), np.uint8))
    ds = AnomalyCocoDataset(
        ann_file=mvtec, data_root='', data_prefix=dict(img=str(root) + '/'),
        test_mode=True, pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='PackIMDDInputs')])
    assert ds[1]['data_samples'].object_name == 'metal nut'


def test_clip_configs_take_the_object_from_the_dataset(repo_root):
    for path in sorted((repo_root / 'configs' / 'baselines' /
                        'anomaly').glob('*_vit_b16_*.py')):
        cfg = Config.fromfile(str(path))
        if cfg.model.type == 'CLIPPromptAD':
            assert cfg.model.object_name is None, path.name
        if cfg.model.type == 'MutualScoring':
            assert {'type': 'SetScoringHook'} in cfg.custom_hooks, path.name
