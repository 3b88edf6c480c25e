# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The ``coco`` input converter and the Tianchi Bai Jiu source converter,
on tiny fake trees in their published layouts."""
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from data_converters.base import ConversionError
from tests.test_data_converters.sources_fakes import (convert, count, names,
                                                      write_img)

H, W = 30, 40


def _dump(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding='utf-8')
    return path


def _instances_tree(root: Path) -> Path:
    """COCO 2017 layout: annotations/instances_{train,val}2017.json +
    {train,val}2017/ images; polygons, compressed and uncompressed RLE,
    box-only, a crowd region and an unannotated image."""
    cats = [{'id': 3, 'name': 'scratch', 'supercategory': 'x'},
            {'id': 7, 'name': 'dent', 'supercategory': 'x'}]
    m = np.zeros((H, W), np.uint8)
    m[5:10, 20:30] = 1                                       # 50 px
    crle = mask_utils.encode(np.asfortranarray(m))
    crle['counts'] = crle['counts'].decode('ascii')
    flat = m.flatten(order='F')                              # uncompressed
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    urle = {'size': [H, W], 'counts': runs}
    train = {
        'images': [
            {'id': 1, 'file_name': 'a.jpg', 'width': W, 'height': H},
            {'id': 2, 'file_name': 'b.jpg', 'width': W, 'height': H},
            {'id': 5, 'file_name': 'c.jpg', 'width': W, 'height': H}],
        'annotations': [
            {'id': 1, 'image_id': 1, 'category_id': 3, 'iscrowd': 0,
             'bbox': [2, 2, 10, 10],
             'segmentation': [[2, 2, 12, 2, 12, 12, 2, 12]]},
            {'id': 1, 'image_id': 1, 'category_id': 7, 'iscrowd': 0,
             'bbox': [20, 5, 10, 5], 'segmentation': crle},
            {'id': 2, 'image_id': 2, 'category_id': 7, 'iscrowd': 1,
             'bbox': [20, 5, 10, 5], 'segmentation': urle}],
        'categories': cats}
    val = {
        'images': [{'id': 1, 'file_name': 'd.jpg', 'width': W,
                    'height': H}],
        'annotations': [
            {'id': 9, 'image_id': 1, 'category_id': 3, 'bbox': [1, 1, 5, 4],
             'segmentation': [], 'area': 20, 'iscrowd': 0}],
        'categories': cats}
    for n in 'abc':
        write_img(root / 'train2017' / f'{n}.jpg', H, W)
    write_img(root / 'val2017' / 'd.jpg', H, W)
    _dump(root / 'annotations' / 'instances_train2017.json', train)
    _dump(root / 'annotations' / 'instances_val2017.json', val)
    return root


def test_coco_instances_native_splits(tmp_path):
    root = _instances_tree(tmp_path / 'coco')
    cocos = convert('coco', root, tmp_path / 'out', {'source': 'coco'})
    assert set(cocos) == {'train', 'val'}
    tr = cocos['train']
    assert names(tr) == {1: 'scratch', 2: 'dent'}      # sorted by COCO id
    ims = {i['file_name']: i for i in tr.dataset['images']}
    assert set(ims) == {'train2017/a.jpg', 'train2017/b.jpg',
                        'train2017/c.jpg'}
    assert ims['train2017/c.jpg']['is_normal']          # no annotations
    by_img = {}
    for a in tr.dataset['annotations']:
        by_img.setdefault(a['image_id'], []).append(a)
    a_anns = sorted(by_img[ims['train2017/a.jpg']['id']],
                    key=lambda a: a['category_id'])
    # polygon 2..12 square: pycocotools rasterises it to 10x10 = 100 px
    assert [a['category_id'] for a in a_anns] == [1, 2]
    assert a_anns[0]['area'] == 100 and a_anns[1]['area'] == 50
    assert a_anns[1]['bbox'] == [20.0, 5.0, 10.0, 5.0]
    crowd = by_img[ims['train2017/b.jpg']['id']][0]
    assert crowd['area'] == 50 and crowd['attributes'] == {'crowd': True}
    va = cocos['val'].dataset['annotations'][0]
    assert va['attributes'] == {'box_only': True}
    assert va['bbox'] == [1.0, 1.0, 5.0, 4.0]
    # image ids are ours (1..N over all splits), not the JSON's
    all_ids = [i['id'] for c in cocos.values() for i in c.dataset['images']]
    assert sorted(all_ids) == [1, 2, 3, 4]


def test_coco_generic_format_dispatch(tmp_path):
    root = _instances_tree(tmp_path / 'coco')
    cocos = convert('generic', root, tmp_path / 'out',
                    {'format': 'coco', 'source': 'generic'})
    assert count(cocos) == 4


def test_coco_errors_name_the_file(tmp_path):
    root = _instances_tree(tmp_path / 'coco')
    train = root / 'annotations' / 'instances_train2017.json'
    d = json.loads(train.read_text())
    good = json.dumps(d)
    # unknown image id in an annotation
    d['annotations'].append({'image_id': 99, 'category_id': 3,
                             'bbox': [0, 0, 1, 1]})
    train.write_text(json.dumps(d))
    with pytest.raises(ConversionError, match='instances_train2017.json: 1 '
                       'annotation image_id'):
        convert('coco', root, tmp_path / 'o1')
    # size mismatch between JSON and file, unknown category: skippable
    d = json.loads(good)
    d['images'][0]['width'] = 41
    d['annotations'][2]['category_id'] = 12
    train.write_text(json.dumps(d))
    with pytest.raises(ConversionError, match='JSON size 41x30 differs'):
        convert('coco', root, tmp_path / 'o2')
    from data_converters.convert import convert as run
    s = run('coco', str(root), str(tmp_path / 'o3'), config={},
            progress=False, on_error='skip')
    rep = json.loads((tmp_path / 'o3' / 'skipped.json').read_text())
    assert s['num_skipped'] == 2 and s['num_images'] == 2
    assert any('unknown category_id 12' in r['reason'] for r in rep)
    # unreadable JSON
    train.write_text('{"images": [')
    with pytest.raises(ConversionError, match='cannot read COCO JSON'):
        convert('coco', root, tmp_path / 'o4')
    assert not (tmp_path / 'o4').exists()
    # RLE of the wrong size
    d = json.loads(good)
    d['annotations'][1]['segmentation']['size'] = [31, 40]
    train.write_text(json.dumps(d))
    with pytest.raises(ConversionError, match=r'RLE size \[31, 40\]'):
        convert('coco', root, tmp_path / 'o5')
    # an image id used twice
    d = json.loads(good)
    d['images'][2]['id'] = 1
    train.write_text(json.dumps(d))
    with pytest.raises(ConversionError, match='image id 1 used twice'):
        convert('coco', root, tmp_path / 'o7')
    # a flat polygon (some tools write one) is read like a nested one
    d = json.loads(good)
    d['annotations'][0]['segmentation'] = [2, 2, 12, 2, 12, 12, 2, 12]
    train.write_text(json.dumps(d))
    cocos = convert('coco', root, tmp_path / 'o8')
    assert sorted(a['area'] for a in cocos['train'].dataset['annotations']) \
        == [50, 50, 100]
    # missing image file
    train.write_text(good)
    (root / 'train2017' / 'b.jpg').unlink()
    with pytest.raises(ConversionError, match="image 'b.jpg' not found"):
        convert('coco', root, tmp_path / 'o6')


def _baijiu_tree(root: Path) -> Path:
    """chongqing1_round1_train1_20191223: images/ + annotations.json with
    category 0 背景 (whole-image box on normal images), repeated
    annotation ids, an image with 背景 + a defect, 喷码正常 only."""
    cats = [{'supercategory': n, 'id': i, 'name': n} for i, n in enumerate(
        ['背景', '瓶盖破损', '瓶盖变形', '瓶盖坏边', '瓶盖打旋', '瓶盖断点',
         '标贴歪斜', '标贴起皱', '标贴气泡', '喷码正常', '喷码异常'])]
    cats = cats[5:] + cats[:5]           # the release lists them unordered
    images, anns = [], []
    spec = [('img_0000001.jpg', [(0, [0, 0, W, H])]),           # normal
            ('img_0000002.jpg', [(0, [0, 0, W, H])]),           # normal
            ('img_0000003.jpg', [(1, [3, 3, 8, 6]), (2, [20, 4, 9, 9])]),
            ('img_0000004.jpg', [(0, [0, 0, W, H]), (1, [5, 5, 5, 5])]),
            ('img_0000005.jpg', [(9, [10, 10, 12, 5])]),        # code ok
            ('img_0000006.jpg', [(10, [10, 10, 12, 5]), (8, [1, 1, 4, 4])])]
    for k, (fname, boxes) in enumerate(spec, start=1):
        write_img(root / 'images' / fname, H, W)
        images.append({'file_name': fname, 'id': k * 3, 'width': W,
                       'height': H})
        for cid, box in boxes:
            anns.append({'area': box[2] * box[3], 'iscrowd': 0,
                         'image_id': k * 3, 'bbox': box,
                         'category_id': cid, 'id': 1})   # ids repeat
    _dump(root / 'annotations.json', {'info': {}, 'images': images,
                                      'annotations': anns,
                                      'categories': cats})
    return root


def test_tianchi_baijiu(tmp_path):
    root = _baijiu_tree(tmp_path / 'chongqing1_round1_train1_20191223')
    cocos = convert('tianchi_baijiu', root, tmp_path / 'out')
    c = next(iter(cocos.values()))
    assert names(c)[1] == '瓶盖破损' and len(names(c)) == 12
    assert '喷码正常' not in names(c).values()
    ims = {i['file_name']: i for cc in cocos.values()
           for i in cc.dataset['images']}
    assert len(ims) == 6
    normal = sorted(f for f, i in ims.items() if i['is_normal'])
    assert normal == ['images/img_0000001.jpg', 'images/img_0000002.jpg',
                      'images/img_0000005.jpg']
    anns = [a for cc in cocos.values() for a in cc.dataset['annotations']]
    cat = {v: k for k, v in names(c).items()}
    assert sorted(a['category_id'] for a in anns) == sorted(
        [cat['瓶盖破损'], cat['瓶盖变形'], cat['瓶盖破损'], cat['喷码异常'],
         cat['标贴气泡']])
    assert all(a['attributes']['box_only'] for a in anns)
    assert len({a['id'] for a in anns}) == 5            # ours are unique
    # keep 喷码正常 as a class
    cocos = convert('tianchi_baijiu', root, tmp_path / 'out2',
                    {'normal_categories': ['背景']})
    c = next(iter(cocos.values()))
    assert '喷码正常' in names(c).values()
    assert count(cocos, normal=True) == 2


def _ssgd_part(root: Path, part: str, names_: list, fold: int = 1):
    cats = [{'id': i + 1, 'name': n} for i, n in enumerate(
        ['liewen', 'bengque', 'baidian', 'huahen', 'louguang', 'wuzi',
         'pomo'])]
    ims = [{'id': k + 1, 'file_name': n, 'width': W, 'height': H}
           for k, n in enumerate(names_)]
    for n in names_:
        write_img(root / f'images_{part}' / n, H, W)
    anns = [{'id': k + 1, 'image_id': k + 1, 'category_id': k % 7 + 1,
             'bbox': [2, 2, 6, 5], 'area': 30, 'iscrowd': 0,
             'segmentation': [[2, 2, 8, 2, 8, 7, 2, 7]]}
            for k in range(len(names_) - 1)]       # last image: no defect
    half = len(ims) // 2
    for name, sel in ((f'train{fold}', ims[:half]), (f'val{fold}',
                                                     ims[half:])):
        ids = {i['id'] for i in sel}
        _dump(root / 'annotations' / part / f'{name}.json',
              {'images': sel, 'categories': cats,
               'annotations': [a for a in anns if a['image_id'] in ids]})


def test_ssgd_two_parts_one_fold(tmp_path):
    root = tmp_path / 'defect_screen'
    # the same file name in both parts is two images
    _ssgd_part(root, 'lb101', ['0001.jpg', '0002.jpg', '0003.jpg',
                               '0004.jpg'])
    _ssgd_part(root, 'lb201', ['0001.jpg', '0005.jpg'])
    cocos = convert('ssgd', root, tmp_path / 'out')
    assert set(cocos) == {'train', 'test'}
    assert names(cocos['train'])[1] == 'liewen'
    files = sorted(i['file_name'] for c in cocos.values()
                   for i in c.dataset['images'])
    assert files == ['images_lb101/0001.jpg', 'images_lb101/0002.jpg',
                     'images_lb101/0003.jpg', 'images_lb101/0004.jpg',
                     'images_lb201/0001.jpg', 'images_lb201/0005.jpg']
    assert count(cocos, normal=True) == 2
    cats = json.loads((tmp_path / 'out' / 'categories.json').read_text())
    assert cats[0]['product'] == 'smartphone screen glass'
    assert cats[3]['defect_type'] == 'scratch'
    # a fold that is not there
    with pytest.raises(ConversionError, match='no annotations/<part>/'
                       'train3.json'):
        convert('ssgd', root, tmp_path / 'o2', {'fold': 3})
