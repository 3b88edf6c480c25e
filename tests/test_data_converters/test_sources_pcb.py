# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""PKU PCB, DeepPCB, GC10-DET and steel-pipe-weld converters on tiny fake
datasets in their native layouts."""
import pytest

from data_converters.base import ConversionError
from tests.test_data_converters.sources_fakes import (convert, count, names,
                                                      write_img, write_voc)


def test_pcb(tmp_path):
    root = tmp_path / 'PCB_DATASET'
    for folder, obj in (('Missing_hole', 'missing_hole'),
                        ('Spurious_copper', 'spurious_copper')):
        for i in range(3):
            stem = f'01_{obj}_{i:02d}'
            write_img(root / 'images' / folder / f'{stem}.jpg', 30, 50)
            write_voc(root / 'Annotations' / folder / f'{stem}.xml',
                      f'{stem}.jpg', 50, 30,
                      [(obj, 2, 3, 10, 12), (obj, 20, 5, 30, 9)])
    (root / 'PCB_USED').mkdir()
    cocos = convert('pcb', root, tmp_path / 'out')
    assert count(cocos) == 6
    anns = [a for c in cocos.values() for a in c.dataset['annotations']]
    assert len(anns) == 12
    assert sorted(a['bbox'] for a in anns)[0] == [2.0, 3.0, 8.0, 9.0]
    cats = names(next(iter(cocos.values())))
    assert cats[1] == 'Missing_hole' and len(cats) == 6
    write_voc(root / 'Annotations' / 'Missing_hole' / '01_missing_hole_00.xml',
              '01_missing_hole_00.jpg', 50, 30, [('solder_ball', 1, 1, 5, 5)])
    with pytest.raises(ConversionError,
                       match="01_missing_hole_00.xml.*'solder_ball'"):
        convert('pcb', root, tmp_path / 'o2')


def _deeppcb(root, lists=True):
    data = root / 'PCBData'
    listed = {'trainval': [], 'test': []}
    for g, n in ((41, 2), (120, 1)):
        for i in range(n):
            stem = f'{g:05d}{i:03d}'
            d = data / f'group{g:05d}'
            write_img(d / f'{g:05d}' / f'{stem}_test.jpg', 40, 40, gray=True)
            write_img(d / f'{g:05d}' / f'{stem}_temp.jpg', 40, 40, gray=True)
            ann = d / f'{g:05d}_not' / f'{stem}.txt'
            ann.parent.mkdir(parents=True, exist_ok=True)
            ann.write_text('1,2,11,12,1\n20 20 30 26 6\n')
            listed['test' if g == 120 else 'trainval'].append(
                f'group{g:05d}/{g:05d}/{stem}.jpg '
                f'group{g:05d}/{g:05d}_not/{stem}.txt')
    if lists:
        for k, v in listed.items():
            (data / f'{k}.txt').write_text('\n'.join(v) + '\n')
    return data


def test_deeppcb(tmp_path):
    data = _deeppcb(tmp_path / 'DeepPCB')
    cocos = convert('deeppcb', tmp_path / 'DeepPCB', tmp_path / 'out')
    # the _temp.jpg templates are the normal images, in their pair's split
    assert {s: len(c.dataset['images']) for s, c in cocos.items()} == {
        'train': 4, 'test': 2}
    assert count(cocos, normal=True) == 3
    assert all(im['file_name'].endswith('_temp.jpg') == im['is_normal']
               for c in cocos.values() for im in c.dataset['images'])
    test = cocos['test']
    cats = names(test)
    assert sorted(cats[a['category_id']] for a in
                  test.dataset['annotations']) == ['open', 'pin-hole']
    assert sorted(a['bbox'] for a in test.dataset['annotations']) == [
        [1.0, 2.0, 10.0, 10.0], [20.0, 20.0, 10.0, 6.0]]
    # without templates; root = PCBData itself works too
    cocos = convert('deeppcb', data, tmp_path / 'o2',
                    config={'include_templates': False})
    assert count(cocos, normal=True) == 0 and count(cocos) == 3
    (data / 'group00041/00041_not/00041001.txt').write_text('1,2,3,4,9\n')
    with pytest.raises(ConversionError, match='00041001.txt.*type 9'):
        convert('deeppcb', data, tmp_path / 'o3')


def test_deeppcb_without_lists(tmp_path):
    _deeppcb(tmp_path / 'DeepPCB', lists=False)
    cocos = convert('deeppcb', tmp_path / 'DeepPCB', tmp_path / 'out')
    assert count(cocos) == 6 and count(cocos, normal=True) == 3


def test_gc10_det(tmp_path):
    root = tmp_path / 'GC10-DET'
    for k, cls in ((1, '1_chongkong'), (7, '7_yiwu')):
        for i in range(3):
            stem = f'img_0{k}_{i:04d}'
            write_img(root / str(k) / f'{stem}.jpg', 30, 40, gray=True)
            objs = [(cls, 1, 1, 9, 9)]
            if i == 0:
                objs.append(('crease', 10, 10, 20, 20))  # English alias
            write_voc(root / 'lable' / f'{stem}.xml', f'{stem}.jpg', 40, 30,
                      objs)
    cocos = convert('gc10_det', root, tmp_path / 'out')
    assert count(cocos) == 6
    c = next(iter(cocos.values()))
    cats = names(c)
    assert len(cats) == 10 and cats[9] == '9_zhehen'
    anns = [a for cc in cocos.values() for a in cc.dataset['annotations']]
    assert sorted({cats[a['category_id']] for a in anns}) == [
        '1_chongkong', '7_yiwu', '9_zhehen']
    (root / 'lable' / 'img_07_0001.xml').unlink()
    with pytest.raises(ConversionError, match='img_07_0001.xml'):
        convert('gc10_det', root, tmp_path / 'o2')


def test_steel_pipe_weld_voc_and_yolo(tmp_path):
    root = tmp_path / 'weld_voc'
    for i, cls in enumerate(('air-hole', 'unfused', 'crack')):
        write_img(root / 'JPEGImages' / f'w{i}.jpg', 20, 60, gray=True)
        write_voc(root / 'Annotations' / f'w{i}.xml', f'w{i}.jpg', 60, 20,
                  [(cls, 5, 5, 15, 15)])
    cocos = convert('steel_pipe_weld', root, tmp_path / 'out')
    assert count(cocos) == 3
    cats = names(next(iter(cocos.values())))
    assert list(cats.values())[:2] == ['air-hole', 'bite-edge']
    import json
    full = json.loads((tmp_path / 'out' / 'categories.json').read_text())
    assert {c['name']: c['defect_type'] for c in full}['unfused'] == \
        'lack of fusion'
    yroot = tmp_path / 'weld_yolo'
    for i in range(3):
        write_img(yroot / 'images' / f'y{i}.jpg', 20, 40, gray=True)
        (yroot / 'labels').mkdir(parents=True, exist_ok=True)
        (yroot / 'labels' / f'y{i}.txt').write_text(
            f'{i} 0.5 0.5 0.25 0.5\n' if i else '')
    cocos = convert('steel_pipe_weld', yroot, tmp_path / 'o2',
                    config={'format': 'yolo'})
    assert count(cocos) == 3 and count(cocos, normal=True) == 1
    with pytest.raises(ConversionError, match='format'):
        convert('steel_pipe_weld', yroot, tmp_path / 'o3',
                config={'format': 'coco'})
