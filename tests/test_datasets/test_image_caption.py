# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""ImageCaptionDataset (captions.jsonl / COCO + captions) and the Stage-1
(Table 8) transforms."""
import imdd_mm  # noqa: F401,I001

import json

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from imdd_mm.datasets import ImageCaptionDataset
from imdd_mm.datasets.image_caption import write_jsonl_atomic
from imdd_mm.datasets.transforms.stage1 import (ColorJitterBSCH,
                                                RandomResizedCropImage,
                                                RandomRotateImage)
from imdd_mm.utils import register_all_modules
from mmdet.registry import TRANSFORMS

from ..conftest import REPO_ROOT

register_all_modules()  # default scope mmdet for the pipelines

TINY_CFG = REPO_ROOT / 'configs' / 'imdd' / 'tiny' / 'stage1_tiny.py'


def _write_images(root, names, size=(40, 56)):
    rng = np.random.RandomState(0)
    for n in names:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), rng.randint(0, 255, size + (3, ), np.uint8))


def _records(root):
    return [
        dict(file_name='a/1.png', image_root=str(root), caption='tile crack',
             nouns=['crack'], source='mt', split='train', is_normal=False,
             width=56, height=40),
        dict(file_name='a/2.png', image_root=str(root), caption='',
             nouns=[], source='mt', split='train', is_normal=True),
        dict(file_name='b/3.png', image_root=str(root),
             caption='steel scratch', nouns=['scratch'], source='neu',
             split='val', is_normal=False),
    ]


@pytest.fixture
def jsonl(tmp_path):
    _write_images(tmp_path / 'imgs', ['a/1.png', 'a/2.png', 'b/3.png'])
    path = tmp_path / 'captions.jsonl'
    write_jsonl_atomic(_records(tmp_path / 'imgs'), str(path))
    return path


def test_jsonl_records_and_filters(jsonl, tmp_path):
    ds = ImageCaptionDataset(ann_file=str(jsonl), lazy_init=False)
    assert len(ds) == 2  # the empty caption is skipped
    info = ds.get_data_info(0)
    assert info['img_path'] == str(tmp_path / 'imgs' / 'a' / '1.png')
    assert info['caption'] == 'tile crack'
    assert info['caption_nouns'] == ['crack']
    assert (info['width'], info['height']) == (56, 40)
    assert len(ImageCaptionDataset(ann_file=str(jsonl),
                                   skip_empty_caption=False)) == 3
    only = ImageCaptionDataset(ann_file=str(jsonl), split='val')
    assert [d['caption'] for d in only] == ['steel scratch']
    assert len(ImageCaptionDataset(ann_file=str(jsonl), sources=['mt'])) == 1
    with pytest.raises(ValueError, match='no samples'):
        ImageCaptionDataset(ann_file=str(jsonl), split='test')


def test_relative_image_root_and_override(tmp_path):
    _write_images(tmp_path / 'imgs', ['x.png'])
    recs = [dict(file_name='x.png', image_root='imgs', caption='c')]
    path = tmp_path / 'captions.jsonl'
    write_jsonl_atomic(recs, str(path))
    ds = ImageCaptionDataset(ann_file=str(path))
    assert ds[0]['img_path'] == str(tmp_path / 'imgs' / 'x.png')
    ds = ImageCaptionDataset(ann_file=str(path),
                             img_root_override='/elsewhere')
    assert ds[0]['img_path'] == '/elsewhere/x.png'


def test_pipeline_packs_caption(jsonl):
    cfg = Config.fromfile(str(TINY_CFG))
    ds = ImageCaptionDataset(ann_file=str(jsonl), pipeline=cfg.train_pipeline)
    out = ds[0]
    assert tuple(out['inputs'].shape) == (3, 64, 64)
    assert out['data_samples'].metainfo['caption'] == 'tile crack'
    assert out['data_samples'].metainfo['source'] == 'mt'


def test_bad_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / 'bad.jsonl'
    path.write_text('{"file_name": "a.png", "caption": "x"}\n{oops\n')
    with pytest.raises(ValueError, match=r'bad\.jsonl:2: invalid JSON'):
        ImageCaptionDataset(ann_file=str(path), data_root=str(tmp_path))
    # converter lines carry no image root: one must be given
    with pytest.raises(ValueError, match=r'bad\.jsonl:1: no image root'):
        ImageCaptionDataset(ann_file=str(path))
    path.write_text('{"file_name": "a.png"}\n')
    with pytest.raises(ValueError, match=r'bad\.jsonl:1: missing field'):
        ImageCaptionDataset(ann_file=str(path))
    with pytest.raises(FileNotFoundError, match='nothere'):
        ImageCaptionDataset(ann_file=str(tmp_path / 'nothere.jsonl'))
    (tmp_path / 'a.txt').write_text('')
    with pytest.raises(ValueError, match='expected a .jsonl'):
        ImageCaptionDataset(ann_file=str(tmp_path / 'a.txt'))


def test_coco_with_image_captions_and_caption_annotations(tmp_path):
    _write_images(tmp_path, ['p.png', 'q.png'])
    images = [dict(id=1, file_name='p.png', width=56, height=40,
                   caption='tile with a crack', caption_nouns=['crack'],
                   source='mt', split='train', is_normal=False),
              dict(id=2, file_name='q.png', width=56, height=40,
                   caption='', source='mt', split='train', is_normal=True)]
    inst = dict(images=images, annotations=[dict(
        id=1, image_id=1, category_id=1, bbox=[0, 0, 2, 2], area=4,
        iscrowd=0, segmentation=[[0, 0, 2, 0, 2, 2]])], categories=[])
    (tmp_path / 'inst.json').write_text(json.dumps(inst))
    ds = ImageCaptionDataset(ann_file=str(tmp_path / 'inst.json'),
                             data_prefix=dict(img=str(tmp_path)))
    assert len(ds) == 1 and ds[0]['caption'] == 'tile with a crack'
    assert ds[0]['img_path'] == str(tmp_path / 'p.png')
    # COCO-captions style: one sample per caption annotation
    caps = dict(images=[dict(id=1, file_name='p.png')], annotations=[
        dict(id=1, image_id=1, caption='first'),
        dict(id=2, image_id=1, caption='second')])
    (tmp_path / 'caps.json').write_text(json.dumps(caps))
    ds = ImageCaptionDataset(ann_file=str(tmp_path / 'caps.json'),
                             data_prefix=dict(img=str(tmp_path)))
    assert [d['caption'] for d in ds] == ['first', 'second']
    (tmp_path / 'nocap.json').write_text(json.dumps(
        dict(images=[dict(id=1, file_name='p.png')], annotations=[])))
    with pytest.raises(ValueError, match='no caption fields'):
        ImageCaptionDataset(ann_file=str(tmp_path / 'nocap.json'))


def test_random_resized_crop():
    np.random.seed(0)
    t = TRANSFORMS.build(dict(type='RandomResizedCropImage', size=32,
                              scale=(0.8, 1.0)))
    img = np.zeros((100, 120, 3), np.uint8)
    for _ in range(20):
        out = t(dict(img=img.copy()))
        assert out['img'].shape == (32, 32, 3)
        x1, y1, x2, y2 = out['crop_bbox']
        frac = (x2 - x1) * (y2 - y1) / (100 * 120)
        assert 0.78 <= frac <= 1.0
    # an elongated image falls back to a centre crop with a clamped ratio
    out = t(dict(img=np.zeros((300, 60, 3), np.uint8)))
    x1, y1, x2, y2 = out['crop_bbox']
    assert (x2 - x1) == 60 and (y2 - y1) == 80
    with pytest.raises(ValueError):
        RandomResizedCropImage(scale=(0.5, 1.2))


def test_random_rotate():
    np.random.seed(0)
    img = np.full((32, 32, 3), 200, np.uint8)
    img[:, :16] = 50
    t = RandomRotateImage(max_angle=15)
    angles = [t(dict(img=img.copy()))['rotate_angle'] for _ in range(50)]
    assert max(angles) <= 15 and min(angles) >= -15
    assert max(angles) - min(angles) > 10
    # reflection fills the corners with image content, never black
    flat = np.full((32, 32, 3), 120, np.uint8)
    out = RandomRotateImage(max_angle=15)(dict(img=flat))['img']
    assert out.shape == flat.shape and (out == 120).all()
    # constant border: the corners turn black after a 15 degree turn
    np.random.seed(3)
    out = RandomRotateImage(max_angle=15, border_mode='constant')(
        dict(img=flat.copy()))
    if abs(out['rotate_angle']) > 5:
        assert out['img'][0, 0].sum() == 0


def test_color_jitter():
    np.random.seed(0)
    gray = np.repeat(np.random.randint(0, 255, (16, 16, 1), np.uint8), 3, 2)
    t = ColorJitterBSCH(brightness=0.2, saturation=0.2, contrast=0.1,
                        hue=0.05)
    out = t(dict(img=gray.copy()))['img']
    assert out.dtype == np.uint8 and out.shape == gray.shape
    # grey stays grey (saturation and hue do not colour it)
    assert np.abs(out[..., 0].astype(int) - out[..., 2]).max() <= 1
    # identity when all factors are 0
    ident = ColorJitterBSCH(0, 0, 0, 0)(dict(img=gray.copy()))['img']
    assert np.array_equal(ident, gray)
    # brightness within +-20 %: the mean moves at most ~20 % (+ rounding)
    means = [ColorJitterBSCH(0.2, 0, 0, 0)(dict(img=gray.copy()))['img']
             .mean() / gray.mean() for _ in range(20)]
    assert 0.79 <= min(means) and max(means) <= 1.21
    assert max(means) - min(means) > 0.05
    colour = np.random.randint(0, 255, (16, 16, 3), np.uint8)
    np.random.seed(1)
    a = t(dict(img=colour.copy()))['img']
    np.random.seed(1)
    b = t(dict(img=colour.copy()))['img']
    assert np.array_equal(a, b) and not np.array_equal(a, colour)
    with pytest.raises(ValueError):
        ColorJitterBSCH(hue=0.7)


@pytest.mark.real_data
def test_real_magnetic_tile_images(magnetic_tile_root, tmp_path):
    imgs = sorted((magnetic_tile_root / 'MT_Crack' / 'Imgs').glob('*.jpg'))[:2]
    recs = [dict(file_name=str(p.relative_to(magnetic_tile_root)),
                 image_root=str(magnetic_tile_root),
                 caption='magnetic tile with a crack defect') for p in imgs]
    write_jsonl_atomic(recs, str(tmp_path / 'captions.jsonl'))
    cfg = Config.fromfile(str(TINY_CFG))
    ds = ImageCaptionDataset(ann_file=str(tmp_path / 'captions.jsonl'),
                             pipeline=cfg.train_pipeline)
    out = ds[1]
    assert tuple(out['inputs'].shape) == (3, 64, 64)  # grey JPG -> 3 ch
    assert out['data_samples'].metainfo['caption'].endswith('crack defect')
