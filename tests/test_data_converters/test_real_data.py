# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Converters on the real datasets in ../shared/data (skipped where absent).
Each dataset is converted once per session (``--nproc 2``)."""
import json
from collections import Counter

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from data_converters.base import get_converter, rle_to_mask, run_conversion
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.real_data

MT_EMPTY = {'exp3_num_45042', 'exp4_num_124690', 'exp4_num_352527',
            'exp4_num_45057'}


def _convert(source, tmp_path_factory, nproc=2):
    root = SHARED_DATA / source
    if not root.is_dir():
        pytest.skip(f'real dataset {source!r} not found at {root}')
    out = tmp_path_factory.mktemp(f'{source}_n{nproc}')
    conv = get_converter(source)(root)
    summary = run_conversion(conv, out, nproc=nproc, progress=False)
    images, anns, cats = [], [], None
    for split in sorted(summary['splits']):
        d = COCO(str(out / 'annotations' / f'{split}.json')).dataset
        images += d['images']
        anns += d['annotations']
        cats = d['categories']
    return dict(root=root, out=out, summary=summary, images=images,
                anns=anns, cats=cats)


@pytest.fixture(scope='session')
def mt(tmp_path_factory):
    return _convert('magnetic_tile', tmp_path_factory)


@pytest.fixture(scope='session')
def neu(tmp_path_factory):
    return _convert('neu_det', tmp_path_factory)


@pytest.fixture(scope='session')
def elpv(tmp_path_factory):
    return _convert('elpv', tmp_path_factory)


def test_magnetic_tile_counts_and_masks(mt):
    ims, anns = mt['images'], mt['anns']
    assert len(ims) == 1344
    assert sum(not i['is_normal'] for i in ims) == 392
    assert sum(i['is_normal'] for i in ims) == 952
    cid = {c['name']: c['id'] for c in mt['cats']}
    per_cls = Counter(i['image_label'] for i in ims if not i['is_normal'])
    assert per_cls == {cid['blowhole']: 115, cid['break']: 85,
                       cid['crack']: 57, cid['fray']: 32, cid['uneven']: 103}
    # the four empty Uneven masks: labelled defective, no instance
    empty = {i['file_name'].rsplit('/', 1)[1][:-4]: i for i in ims
             if i['attributes'].get('empty_mask')}
    assert set(empty) == MT_EMPTY
    assert all(i['image_label'] == cid['uneven'] for i in empty.values())
    with_ann = {a['image_id'] for a in anns}
    assert not any(i['id'] in with_ann for i in empty.values())
    assert len(anns) == 388 and len(with_ann) == 388
    assert mt['summary']['splits'] == {'train': 940, 'val': 134,
                                       'test': 270}


def test_magnetic_tile_soft_masks_thresholded_and_rle_round_trip(mt):
    import cv2
    by_id = {i['id']: i for i in mt['images']}
    for a in sorted(mt['anns'], key=lambda a: a['id'])[::25]:
        im = by_id[a['image_id']]
        png = mt['root'] / (im['file_name'][:-4] + '.png')
        raw = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        raw = raw.max(axis=2) if raw.ndim == 3 else raw
        m = rle_to_mask(a['segmentation'])
        assert np.array_equal(m, raw > 127)
        rle = dict(a['segmentation'],
                   counts=a['segmentation']['counts'].encode())
        assert a['area'] == int(m.sum()) == int(mask_utils.area(rle))
        ys, xs = np.nonzero(m)
        assert a['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                             ys.max() - ys.min() + 1]


def test_magnetic_tile_nproc_1_equals_nproc_2(mt, tmp_path_factory):
    other = _convert('magnetic_tile', tmp_path_factory, nproc=1)
    for f in ('annotations/train.json', 'annotations/val.json',
              'annotations/test.json', 'captions.jsonl', 'categories.json'):
        assert (mt['out'] / f).read_bytes() == (other['out'] /
                                                f).read_bytes(), f


def test_neu_det_boxes_with_their_own_class(neu):
    ims, anns = neu['images'], neu['anns']
    assert len(ims) == 1800 and len(anns) == 4189
    assert not any(i['is_normal'] for i in ims)
    assert sum('Validation_Images/' in i['file_name'] for i in ims) == 30
    names = {c['id']: c['name'] for c in neu['cats']}
    assert Counter(names[i['image_label']] for i in ims) == {
        n: 300 for n in names.values()}
    by_id = {i['id']: i for i in ims}
    import xml.etree.ElementTree as ET
    differ = 0
    difficult = 0
    # every box carries its own XML object's class
    per_image = {}
    for a in anns:
        per_image.setdefault(a['image_id'], []).append(a)
    for img_id, alist in per_image.items():
        im = by_id[img_id]
        xml_dir = 'ANNOTATIONS' if im['file_name'].startswith('IMAGES') \
            else 'Validation_Annotations'
        stem = im['file_name'].rsplit('/', 1)[1][:-4]
        objs = ET.parse(str(neu['root'] / xml_dir /
                            f'{stem}.xml')).getroot().findall('object')
        alist.sort(key=lambda a: a['id'])
        assert [names[a['category_id']] for a in alist] == [
            o.findtext('name').strip() for o in objs]
        differ += sum(names[a['category_id']] != names[im['image_label']]
                      for a in alist)
        difficult += sum(a['attributes']['difficult'] for a in alist)
    assert differ == 188 and difficult == 81
    assert all(a['iscrowd'] == 0 and a['area'] > 0 for a in anns)


def test_elpv_labels(elpv):
    ims = elpv['images']
    assert len(ims) == 2624 and elpv['anns'] == []
    probs = Counter(i['attributes']['defect_probability'] for i in ims)
    assert probs == {0.0: 1508, 0.3333: 295, 0.6667: 106, 1.0: 715}
    assert sum(i['is_normal'] for i in ims) == 1508
    sev = Counter(i['attributes'].get('severity') for i in ims)
    assert sev == {None: 1508, 'low': 295, 'medium': 106, 'high': 715}
    labels = [json.loads(x) for x in
              (elpv['out'] / 'captions.jsonl').read_text().splitlines()]
    assert len(labels) == 2624 and all(x['caption'] for x in labels)
