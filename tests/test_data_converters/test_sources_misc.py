# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""WM-811K, SDNET2018 and the Tianchi aluminium / fabric converters on tiny
fake datasets in their native layouts."""
import json

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from data_converters.base import ConversionError, run_conversion
from data_converters.sources.wm811k import WM811KConverter, render_wafer
from tests.test_data_converters.sources_fakes import (convert, count, names,
                                                      write_img)


def _wafer_rows():
    rng = np.random.default_rng(0)
    rows = []
    for k, (ft, tt) in enumerate([([['none']], [['Training']]),
                                  ([['Center']], [['Training']]),
                                  ([['Edge-Ring']], [['Test']]),
                                  (np.zeros((0, 0)), np.zeros((0, 0))),
                                  ([['Scratch']], [['Test']])]):
        rows.append(dict(waferMap=rng.integers(0, 3, (20 + k, 25)),
                         failureType=ft, trianTestLabel=tt,
                         lotName='lot1', waferIndex=float(k + 1),
                         dieSize=500.0))
    return rows


class _RowsWM811K(WM811KConverter):
    """Same converter, rows given directly (pandas is not a dependency)."""

    def _load_rows(self):
        return _wafer_rows()


def test_wm811k_renders_and_converts(tmp_path):
    root = tmp_path / 'wm811k'
    root.mkdir()
    conv = _RowsWM811K(root)
    conv.name = 'wm811k'
    summary = run_conversion(conv, tmp_path / 'out', progress=False)
    assert summary['num_images'] == 4  # the unlabelled row is skipped
    assert summary['splits'] == {'train': 2, 'test': 2}
    train = COCO(str(tmp_path / 'out' / 'annotations' / 'train.json'))
    ims = train.dataset['images']
    assert [im['is_normal'] for im in ims] == [True, False]
    assert names(train)[ims[1]['image_label']] == 'Center'
    assert ims[0]['file_name'].startswith('images/lot1_1_0')
    png = cv2.imread(str(root / ims[0]['file_name']), cv2.IMREAD_UNCHANGED)
    assert png.shape == (20, 25) and set(np.unique(png)) <= {0, 127, 255}
    assert (png == 255).sum() == (_wafer_rows()[0]['waferMap'] == 2).sum()
    # rerun: rendered files untouched, outputs byte-identical
    before = {p: p.stat().st_mtime_ns for p in (root / 'images').iterdir()}
    out1 = (tmp_path / 'out' / 'annotations' / 'test.json').read_bytes()
    run_conversion(conv, tmp_path / 'out', progress=False)
    assert {p: p.stat().st_mtime_ns
            for p in (root / 'images').iterdir()} == before
    assert (tmp_path / 'out' / 'annotations' / 'test.json').read_bytes() \
        == out1
    # a render_dir outside the root (read-only sources)
    conv2 = _RowsWM811K(root, {'render_dir': str(tmp_path / 'o' / 'images')})
    conv2.name = 'wm811k'
    run_conversion(conv2, tmp_path / 'o', progress=False)
    t = json.loads((tmp_path / 'o' / 'annotations' / 'test.json').read_text())
    assert t['images'][0]['file_name'].startswith('../o/images/')
    with pytest.raises(ValueError):
        render_wafer(np.zeros((0, 3)))


def test_wm811k_needs_pickle(tmp_path):
    with pytest.raises(ConversionError, match='LSWMD.pkl'):
        WM811KConverter(tmp_path).scan()


def test_wm811k_pandas_pickle(tmp_path):
    pd = pytest.importorskip('pandas')
    root = tmp_path / 'wm'
    root.mkdir()
    pd.DataFrame(_wafer_rows()).to_pickle(root / 'LSWMD.pkl')
    cocos = convert('wm811k', root, tmp_path / 'out')
    assert count(cocos) == 4


def test_sdnet2018(tmp_path):
    root = tmp_path / 'SDNET2018'
    for letter in ('D', 'P', 'W'):
        for i in range(3):
            write_img(root / letter / f'C{letter}' / f'{i}-{letter}.jpg')
            write_img(root / letter / f'U{letter}' / f'{i}-u{letter}.jpg')
    cocos = convert('sdnet2018', root, tmp_path / 'out')
    assert count(cocos) == 18 and count(cocos, normal=True) == 9
    assert sum(len(c.dataset['annotations']) for c in cocos.values()) == 0
    cats = names(next(iter(cocos.values())))
    labels = sorted(cats[im['image_label']] for c in cocos.values()
                    for im in c.dataset['images'] if not im['is_normal'])
    assert labels == ['deck/crack'] * 3 + ['pavement/crack'] * 3 + \
        ['wall/crack'] * 3
    products = {im['product'] for c in cocos.values()
                for im in c.dataset['images']}
    assert products == {'concrete deck', 'concrete pavement',
                        'concrete wall'}
    with pytest.raises(ConversionError, match='no D/CD'):
        convert('sdnet2018', tmp_path / 'out', tmp_path / 'o2')


def _labelme(path, shapes):
    path.write_text(json.dumps({'shapes': [
        {'label': lab, 'points': pts, 'shape_type': kind}
        for lab, pts, kind in shapes], 'imagePath': path.stem + '.jpg'},
        ensure_ascii=False))


def test_tianchi_aluminum_round2_and_round1(tmp_path):
    root = tmp_path / 'guangdong_round2_train_20181011'
    single = root / '单瑕疵图片' / '擦花'
    write_img(single / 'a.jpg', 40, 60)
    _labelme(single / 'a.json', [('擦花', [[2, 2], [20, 2], [20, 10],
                                         [2, 10]], 'polygon')])
    multi = root / '多瑕疵图片'
    write_img(multi / 'b.jpg', 40, 60)
    _labelme(multi / 'b.json', [('脏点', [[1, 1], [5, 6]], 'rectangle'),
                                ('桔皮', [[10, 10], [30, 10], [30, 30]],
                                 'polygon')])
    for i in range(2):
        write_img(root / '无瑕疵样本' / f'n{i}.jpg', 40, 60)
    cocos = convert('tianchi_aluminum', root, tmp_path / 'out')
    assert count(cocos) == 4 and count(cocos, normal=True) == 2
    anns = [a for c in cocos.values() for a in c.dataset['annotations']]
    assert len(anns) == 3
    assert sorted(isinstance(a['segmentation'], dict) for a in anns) == [
        False, True, True]
    full = json.loads((tmp_path / 'out' / 'categories.json').read_text())
    assert {c['name']: c['defect_type'] for c in full}['擦花'] == 'scuff'
    # round 1: folder classes, incl. the 其他/<class> sub-folders
    r1 = tmp_path / 'guangdong_round1_train2_20180916'
    write_img(r1 / '瑕疵样本' / '漏底' / 'x.jpg')
    write_img(r1 / '瑕疵样本' / '其他' / '喷流' / 'y.jpg')
    write_img(r1 / '无瑕疵样本' / 'z.jpg')
    cocos = convert('tianchi_aluminum', r1, tmp_path / 'o1')
    cats = names(next(iter(cocos.values())))
    labels = sorted(cats[im['image_label']] for c in cocos.values()
                    for im in c.dataset['images'] if not im['is_normal'])
    assert labels == ['喷流', '漏底']
    write_img(r1 / '瑕疵样本' / '外星瑕疵' / 'w.jpg')
    with pytest.raises(ConversionError, match='外星瑕疵'):
        convert('tianchi_aluminum', r1, tmp_path / 'o2')


def test_tianchi_fabric(tmp_path):
    root = tmp_path / 'guangdong1_round1_train1_20190818'
    for i in range(3):
        write_img(root / 'defect_Images' / f'd{i}.jpg', 40, 80)
    for i in range(2):
        write_img(root / 'normal_Images' / f'tpl{i}' / f'n{i}.jpg', 40, 80)
    anno = [dict(name='d0.jpg', defect_name='结头', bbox=[1, 2, 11.5, 12]),
            dict(name='d0.jpg', defect_name='破洞', bbox=[20, 20, 30, 30]),
            dict(name='d1.jpg', defect_name='破洞', bbox=[5, 5, 9, 9]),
            dict(name='d2.jpg', defect_name='油渍', bbox=[0, 0, 79, 39])]
    (root / 'Annotations').mkdir()
    (root / 'Annotations' / 'anno_train.json').write_text(
        json.dumps(anno, ensure_ascii=False))
    cocos = convert('tianchi_fabric', root, tmp_path / 'out')
    assert count(cocos) == 5 and count(cocos, normal=True) == 2
    anns = [a for c in cocos.values() for a in c.dataset['annotations']]
    assert sorted(a['bbox'] for a in anns)[1] == [1.0, 2.0, 10.5, 10.0]
    cats = names(next(iter(cocos.values())))
    assert len(cats) == 34 and cats[1] == '破洞'
    ims = {im['file_name']: im for c in cocos.values()
           for im in c.dataset['images']}
    assert ims['defect_Images/d0.jpg']['image_label'] is None
    assert cats[ims['defect_Images/d1.jpg']['image_label']] == '破洞'
    anno.append(dict(name='d9.jpg', defect_name='破洞', bbox=[1, 1, 2, 2]))
    (root / 'Annotations' / 'anno_train.json').write_text(
        json.dumps(anno, ensure_ascii=False))
    with pytest.raises(ConversionError, match='anno_train.json: image d9'):
        convert('tianchi_fabric', root, tmp_path / 'o2')
    anno[-1]['defect_name'] = '外星人'
    anno[-1]['name'] = 'd1.jpg'
    (root / 'Annotations' / 'anno_train.json').write_text(
        json.dumps(anno, ensure_ascii=False))
    with pytest.raises(ConversionError, match='unknown defect_name'):
        convert('tianchi_fabric', root, tmp_path / 'o3')
