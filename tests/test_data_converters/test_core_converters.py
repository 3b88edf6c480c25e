# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Magnetic Tile, NEU-DET and ELPV converters on tiny fake datasets in their
published layouts, incl. bad input."""
import json
import os

import numpy as np
import pytest
from pycocotools.coco import COCO

from data_converters.base import (ConversionError, get_converter,
                                  rle_to_mask, run_conversion)
from tests.test_data_converters.fake_layouts import (make_elpv,
                                                     make_magnetic_tile,
                                                     make_neu_det, truncate,
                                                     write_img)


def convert(source, root, out, **kw):
    kw.setdefault('progress', False)
    conv = get_converter(source)(root, config=kw.pop('config', None))
    return run_conversion(conv, out, **kw)


def load_all(out):
    images, anns, cats = [], [], None
    for f in sorted(os.listdir(out / 'annotations')):
        coco = COCO(str(out / 'annotations' / f))  # loads with pycocotools
        d = coco.dataset
        images += d['images']
        anns += d['annotations']
        cats = d['categories']
    return images, anns, cats


def read_tree(out):
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob('*')) if p.is_file()}


@pytest.fixture
def mt_root(tmp_path):
    return make_magnetic_tile(tmp_path / 'magnetic_tile')


def test_magnetic_tile_conversion(mt_root, tmp_path):
    out = tmp_path / 'out'
    s = convert('magnetic_tile', mt_root, out)
    assert s['num_images'] == 13 and s['num_normal'] == 3
    assert s['num_annotations'] == 9  # 10 defect images, 1 empty mask
    images, anns, cats = load_all(out)
    assert [c['name'] for c in cats] == ['blowhole', 'break', 'crack',
                                         'fray', 'uneven']
    assert {c['defect_type'] for c in cats} >= {'uneven surface', 'crack'}
    assert all(c['imdd_id'] and c['domain'] and c['material'] for c in cats)
    by_name = {c['name']: c['id'] for c in cats}
    for a in anns:
        m = rle_to_mask(a['segmentation'])
        # soft mask thresholded > 127: only the 8x2 core of 255s
        assert m.sum() == 16 == a['area']
        assert a['bbox'] == [5.0, 6.0, 2.0, 8.0] and a['iscrowd'] == 0
    img_by_id = {i['id']: i for i in images}
    assert len(img_by_id) == 13
    for i in images:
        assert i['file_name'].startswith('MT_') and '/Imgs/' in i['file_name']
        assert (mt_root / i['file_name']).is_file()
        assert i['source'] == 'magnetic_tile' and i['license']
        assert i['original_path'] == i['file_name']
        assert i['caption'] and i['caption_nouns'][0] == 'magnetic tile'
        if 'MT_Free' in i['file_name']:
            assert i['is_normal'] and i['image_label'] is None
            assert 'no visible defects' in i['caption']
        else:
            cls = i['file_name'].split('/')[0][3:].lower()
            assert not i['is_normal'] and i['image_label'] == by_name[cls]
    # the empty Uneven mask: image-level label, no instance, not normal
    empty = [i for i in images if i['attributes'].get('empty_mask')]
    assert len(empty) == 1 and empty[0]['image_label'] == by_name['uneven']
    assert not any(a['image_id'] == empty[0]['id'] for a in anns)
    assert 'uneven surface' in empty[0]['caption']
    caps = [json.loads(x) for x in (out / 'captions.jsonl').read_text()
            .splitlines()]
    assert [c['file_name'] for c in caps] == sorted(i['file_name']
                                                    for i in images)
    assert set(caps[0]) == {'file_name', 'caption', 'nouns',
                            'source', 'split', 'is_normal', 'width',
                            'height'}
    assert json.loads((out / 'categories.json').read_text()) == cats
    assert json.loads((out / 'skipped.json').read_text()) == []


def test_rerun_and_nproc_give_identical_bytes(mt_root, tmp_path):
    convert('magnetic_tile', mt_root, tmp_path / 'a', nproc=1)
    convert('magnetic_tile', mt_root, tmp_path / 'b', nproc=2)
    convert('magnetic_tile', mt_root, tmp_path / 'a', nproc=2)  # rerun
    assert read_tree(tmp_path / 'a') == read_tree(tmp_path / 'b')
    convert('magnetic_tile', mt_root, tmp_path / 'c', seed=5)
    assert read_tree(tmp_path / 'c') != read_tree(tmp_path / 'a')


def test_bad_input_raise_names_file_and_writes_nothing(mt_root, tmp_path):
    bad = truncate(next((mt_root / 'MT_Crack' / 'Imgs').glob('*.jpg')))
    with pytest.raises(ConversionError, match=f'{bad.name}: truncated'):
        convert('magnetic_tile', mt_root, tmp_path / 'o')
    assert not (tmp_path / 'o').exists()  # no partial outputs


def test_bad_input_skip_reports_every_item(mt_root, tmp_path):
    imgs = sorted((mt_root / 'MT_Blowhole' / 'Imgs').glob('*.jpg'))
    truncate(imgs[0])
    (imgs[1].with_suffix('.png')).unlink()  # missing mask
    brk = sorted((mt_root / 'MT_Break' / 'Imgs').glob('*.jpg'))[0]
    write_img(brk.with_suffix('.png'), np.zeros((3, 3), np.uint8))
    fray = sorted((mt_root / 'MT_Fray' / 'Imgs').glob('*.jpg'))[0]
    fray.write_bytes(b'\x00garbage')  # corrupt
    out = tmp_path / 'o'
    s = convert('magnetic_tile', mt_root, out, on_error='skip', nproc=2)
    assert s['num_skipped'] == 4 and s['num_images'] == 9
    rep = json.loads((out / 'skipped.json').read_text())
    reasons = {os.path.basename(r['path']): r['reason'] for r in rep}
    assert reasons[imgs[0].name].startswith('truncated JPEG')
    assert reasons[imgs[1].with_suffix('.png').name] == 'missing mask'
    assert reasons[brk.with_suffix('.png').name].startswith('mask size 3x3')
    assert reasons[fray.name].startswith('corrupt')
    images, _, _ = load_all(out)
    names = {i['file_name'] for i in images}
    assert not any(r['item'] in names for r in rep)


def test_missing_mask_raise_names_the_mask(mt_root, tmp_path):
    m = sorted((mt_root / 'MT_Crack' / 'Imgs').glob('*.png'))[0]
    m.unlink()
    with pytest.raises(ConversionError, match=f'{m.name}: missing mask'):
        convert('magnetic_tile', mt_root, tmp_path / 'o')


def test_neu_det_class_per_xml_object(tmp_path):
    root = make_neu_det(tmp_path / 'neu')
    out = tmp_path / 'out'
    s = convert('neu_det', root, out, nproc=2)
    assert s['num_images'] == 7 and s['num_normal'] == 0
    images, anns, cats = load_all(out)
    cid = {c['name']: c['id'] for c in cats}
    assert len(cats) == 6 and all(c['defect_type'] for c in cats)
    img = {i['file_name']: i for i in images}
    assert 'Validation_Images/inclusion_2.jpg' in img
    patches = img['IMAGES/patches_1.jpg']
    assert patches['image_label'] == cid['patches']
    pa = sorted((a for a in anns if a['image_id'] == patches['id']),
                key=lambda a: a['id'])
    assert [a['category_id'] for a in pa] == [cid['patches'],
                                              cid['scratches']]
    assert pa[1]['bbox'] == [100.0, 10.0, 90.0, 20.0]
    assert pa[1]['attributes'] == {'difficult': 1, 'truncated': 0,
                                   'box_only': True}
    assert pa[1]['iscrowd'] == 0 and pa[1]['area'] == 1800.0
    assert 'Additional scratch' in patches['caption']


def test_neu_det_bad_xml(tmp_path):
    root = make_neu_det(tmp_path / 'neu')
    x = root / 'ANNOTATIONS' / 'crazing_1.xml'
    x.write_text(x.read_text().replace('crazing\n', 'bubbles\n'))
    (root / 'ANNOTATIONS' / 'inclusion_1.xml').unlink()
    with pytest.raises(ConversionError, match="crazing_1.xml: unknown class "
                       "name 'bubbles'"):
        convert('neu_det', root, tmp_path / 'o')
    s = convert('neu_det', root, tmp_path / 'o', on_error='skip')
    rep = json.loads((tmp_path / 'o' / 'skipped.json').read_text())
    assert s['num_skipped'] == 2 and s['num_images'] == 5
    assert [os.path.basename(r['path']) for r in rep] == [
        'crazing_1.xml', 'inclusion_1.xml']
    assert rep[1]['reason'] == 'missing annotation file'


def test_elpv_labels(tmp_path):
    root = make_elpv(tmp_path / 'elpv')
    out = tmp_path / 'out'
    s = convert('elpv', root, out)
    assert s['num_images'] == 8 and s['num_normal'] == 2
    images, anns, cats = load_all(out)
    assert anns == [] and [c['name'] for c in cats] == ['defective']
    sev = {}
    for i in images:
        a = i['attributes']
        assert a['cell_type'] in ('mono', 'poly')
        assert i['material'] == {'mono': 'monocrystalline silicon',
                                 'poly': 'polycrystalline silicon'}[
                                     a['cell_type']]
        if a['defect_probability'] == 0:
            assert i['is_normal'] and i['image_label'] is None
        else:
            assert i['image_label'] == 1 and not i['is_normal']
            sev[a['defect_probability']] = a['severity']
            assert f'{a["severity"]}-severity' in i['caption']
    assert sev == {0.3333: 'low', 0.6667: 'medium', 1.0: 'high'}


def test_elpv_malformed_row(tmp_path):
    root = make_elpv(tmp_path / 'elpv')
    lines = (root / 'labels.csv').read_text().splitlines()
    lines[2] = 'images/cell0003.png 1.7 mono'
    lines[4] = 'images/cell0005.png oops'
    (root / 'labels.csv').write_text('\n'.join(lines) + '\n')
    with pytest.raises(ConversionError, match=r'labels\.csv:3: probability'):
        convert('elpv', root, tmp_path / 'o')
    convert('elpv', root, tmp_path / 'o', on_error='skip')
    rep = json.loads((tmp_path / 'o' / 'skipped.json').read_text())
    assert [r['path'].rsplit('/', 1)[1] for r in rep] == ['labels.csv:3',
                                                          'labels.csv:5']
