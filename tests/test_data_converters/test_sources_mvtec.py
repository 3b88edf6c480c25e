# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""MVTec AD, MVTec AD 2, VisA and BTAD converters on tiny fake datasets in
their native layouts."""
import json

import pytest

from data_converters.base import ConversionError, get_converter
from tests.test_data_converters.sources_fakes import (convert, count, names,
                                                      write_img, write_mask)


def _mvtec(root):
    for obj, defects in (('bottle', ('broken_large', 'contamination')),
                         ('screw', ('scratch_head', ))):
        for i in range(3):
            write_img(root / obj / 'train' / 'good' / f'{i:03d}.png')
        write_img(root / obj / 'test' / 'good' / '000.png')
        for d in defects:
            for i in range(2):
                write_img(root / obj / 'test' / d / f'{i:03d}.png')
                write_mask(root / obj / 'ground_truth' / d /
                           f'{i:03d}_mask.png')
    (root / 'license.txt').write_text('CC BY-NC-SA 4.0')


def test_mvtec_ad(tmp_path):
    root = tmp_path / 'mvtec'
    _mvtec(root)
    cocos = convert('mvtec_ad', root, tmp_path / 'out')
    assert set(cocos) == {'train', 'test'}
    assert count({'t': cocos['train']}) == 6
    assert count({'t': cocos['train']}, normal=False) == 0
    test = cocos['test']
    assert len(test.dataset['images']) == 2 + 6
    assert len(test.dataset['annotations']) == 6
    cats = names(test)
    assert sorted(cats.values()) == ['bottle/broken_large',
                                     'bottle/contamination',
                                     'screw/scratch_head']
    full = json.loads((tmp_path / 'out' / 'categories.json').read_text())
    by = {c['name']: c for c in full}
    assert by['bottle/broken_large']['product'] == 'bottle'
    assert by['screw/scratch_head']['defect_type'] == 'scratch'
    # every defective image has its own category as image label
    for im in test.dataset['images']:
        if not im['is_normal']:
            ann = test.loadAnns(test.getAnnIds(imgIds=[im['id']]))[0]
            assert ann['category_id'] == im['image_label']
            assert cats[im['image_label']].split('/')[1] in im['file_name']
            assert ann['area'] == 8 * 10
    good = [im for im in test.dataset['images'] if im['is_normal']]
    assert any('bottle' in im['caption'].lower() for im in good)
    assert {im['product'] for im in good} == {'bottle', 'screw'}


def test_mvtec_ad_errors(tmp_path):
    root = tmp_path / 'mvtec'
    _mvtec(root)
    (root / 'bottle/ground_truth/contamination/001_mask.png').unlink()
    with pytest.raises(ConversionError, match='001_mask.png'):
        convert('mvtec_ad', root, tmp_path / 'out')
    write_mask(root / 'bottle/ground_truth/contamination/001_mask.png', 16,
               16)
    with pytest.raises(ConversionError, match='001_mask.png.*differs'):
        convert('mvtec_ad', root, tmp_path / 'out')
    with pytest.raises(ConversionError, match='no category folders'):
        get_converter('mvtec_ad')(tmp_path)


def test_mvtec_ad2(tmp_path):
    root = tmp_path / 'mvtec_ad_2'
    for obj in ('can', 'vial'):
        write_img(root / obj / 'train/good/000_regular.png')
        write_img(root / obj / 'validation/good/000_regular.png')
        write_img(root / obj / 'test_public/good/000_regular.png')
        write_img(root / obj / 'test_public/bad/000_regular.png')
        write_mask(root / obj /
                   'test_public/ground_truth/bad/000_regular_mask.png')
        write_img(root / obj / 'test_private/000_regular.png')  # unlabelled
    cocos = convert('mvtec_ad2', root, tmp_path / 'out')
    assert {s: len(c.dataset['images']) for s, c in cocos.items()} == {
        'train': 2, 'val': 2, 'test': 4}
    assert sorted(names(cocos['test']).values()) == ['can/bad', 'vial/bad']
    assert len(cocos['test'].dataset['annotations']) == 2
    # empty mask: error by default, image label only on request
    write_mask(root / 'can/test_public/ground_truth/bad/000_regular_mask.png',
               rects=())
    with pytest.raises(ConversionError, match='empty mask'):
        convert('mvtec_ad2', root, tmp_path / 'o2')
    cocos = convert('mvtec_ad2', root, tmp_path / 'o3',
                    config={'empty_mask': 'image_label'})
    assert len(cocos['test'].dataset['annotations']) == 1


def test_visa_split_csv_and_label_maps(tmp_path):
    root = tmp_path / 'VisA'
    rows = ['object,split,label,image,mask']
    for obj in ('candle', 'pcb1'):
        base = root / obj / 'Data'
        for i in range(3):
            write_img(base / 'Images' / 'Normal' / f'{i:04d}.JPG')
            rows.append(f'{obj},{"train" if i < 2 else "test"},normal,'
                        f'{obj}/Data/Images/Normal/{i:04d}.JPG,')
        write_img(base / 'Images' / 'Anomaly' / '000.JPG')
        # label map: two regions with values 1 and 2 -> two instances
        write_mask(base / 'Masks' / 'Anomaly' / '000.png',
                   rects=((2, 6, 2, 6, 1), (20, 30, 20, 38, 2)))
        rows.append(f'{obj},test,anomaly,{obj}/Data/Images/Anomaly/000.JPG,'
                    f'{obj}/Data/Masks/Anomaly/000.png')
        (root / obj / 'image_anno.csv').write_text(
            'image,label,mask\n'
            f'{obj}/Data/Images/Anomaly/000.JPG,"chunk missing,scratch",'
            f'{obj}/Data/Masks/Anomaly/000.png\n')
    (root / 'split_csv').mkdir(parents=True)
    (root / 'split_csv' / '1cls.csv').write_text('\n'.join(rows) + '\n')
    cocos = convert('visa', root, tmp_path / 'out')
    assert {s: len(c.dataset['images']) for s, c in cocos.items()} == {
        'train': 4, 'test': 4}
    test = cocos['test']
    cats = names(test)
    assert len(cats) == 8 + 4  # the id2class defect classes of both objects
    anns = test.dataset['annotations']
    assert len(anns) == 4 and sorted(a['area'] for a in anns) == [
        16, 16, 180, 180]
    # label-map value k -> defect class k of the object
    assert sorted((cats[a['category_id']], a['area']) for a in anns) == [
        ('candle/chunk of wax missing', 16),
        ('candle/damaged corner of packaging', 180), ('pcb1/bent', 16),
        ('pcb1/melt', 180)]
    bad = [im for im in test.dataset['images'] if not im['is_normal']]
    assert bad[0]['attributes']['defect_labels'] == ['chunk missing',
                                                     'scratch']
    # a row without its mask is refused, naming the CSV
    (root / 'split_csv' / '1cls.csv').write_text(
        '\n'.join(rows[:-1] + ['pcb1,test,anomaly,pcb1/Data/Images/Anomaly/'
                               '000.JPG,']) + '\n')
    with pytest.raises(ConversionError, match='1cls.csv'):
        convert('visa', root, tmp_path / 'o2')


def test_btad(tmp_path):
    root = tmp_path / 'BTech_Dataset_transformed'
    for prod, ext, mext in (('01', '.bmp', '.png'), ('03', '.bmp', '.bmp')):
        for i in range(2):
            write_img(root / prod / 'train' / 'ok' / f'{i:04d}{ext}')
        write_img(root / prod / 'test' / 'ok' / f'0000{ext}')
        write_img(root / prod / 'test' / 'ko' / f'0000{ext}')
        write_mask(root / prod / 'ground_truth' / 'ko' / f'0000{mext}')
    cocos = convert('btad', root, tmp_path / 'out')
    assert {s: len(c.dataset['images']) for s, c in cocos.items()} == {
        'train': 4, 'test': 4}
    assert sorted(names(cocos['test']).values()) == ['01/ko', '03/ko']
    assert len(cocos['test'].dataset['annotations']) == 2
    (root / '03/ground_truth/ko/0000.bmp').unlink()
    with pytest.raises(ConversionError, match='0000.png: missing mask'):
        convert('btad', root, tmp_path / 'o2')


def test_visa_without_split_csv(tmp_path):
    root = tmp_path / 'VisA'
    base = root / 'cashew' / 'Data'
    for i in range(4):
        write_img(base / 'Images' / 'Normal' / f'{i:04d}.JPG')
    write_img(base / 'Images' / 'Anomaly' / '000.JPG')
    write_mask(base / 'Masks' / 'Anomaly' / '000.png', rects=(
        (1, 5, 1, 5, 2), ))
    cocos = convert('visa', root, tmp_path / 'out')
    assert count(cocos) == 5 and count(cocos, normal=False) == 1
    assert set(cocos) <= {'train', 'val', 'test'}  # seeded split


def test_mvtec_ad_category_filter(tmp_path):
    root = tmp_path / 'mvtec'
    _mvtec(root)
    cocos = convert('mvtec_ad', root, tmp_path / 'out',
                    config={'categories': ['screw']})
    assert count(cocos) == 3 + 1 + 2
    assert list(names(cocos['test']).values()) == ['screw/scratch_head']
    with pytest.raises(ConversionError, match="'nut'"):
        convert('mvtec_ad', root, tmp_path / 'o2',
                config={'categories': ['nut']})
