# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""N-per-class splits (data_converters/few_shot_split.py) on a converted
MVTec-AD-layout dataset and on hand-made COCO files."""
import json
from collections import Counter
from pathlib import Path

import pytest

from data_converters.few_shot_split import main, make_few_shot_split
from tests.test_tools.test_benchmark_per_category import make_mvtec_layout


def _cats_of(coco):
    names = {c['id']: c['name'] for c in coco['categories']}
    per_image = {}
    for a in coco['annotations']:
        per_image.setdefault(a['image_id'], set()).add(names[a['category_id']])
    return per_image


def _write(ann_dir: Path, per_class: dict, normals: int = 3,
           both: int = 0) -> None:
    """train.json (normal images only, like MVTec AD) and test.json with
    ``per_class`` images per category, ``normals`` normal test images per
    product and ``both`` images holding 'p/a' and 'p/b'."""
    cats = [dict(id=i, name=n, supercategory='p')
            for i, n in enumerate(sorted(per_class), 1)]
    cid = {c['name']: c['id'] for c in cats}

    def coco(images, anns):
        return dict(info={}, images=images, annotations=anns,
                    categories=cats)

    train = [dict(id=i + 1, file_name=f'p/train/good/{i}.png',
                  is_normal=True, image_label=None) for i in range(4)]
    images, anns = [], []
    for name, n in sorted(per_class.items()):
        for k in range(n):
            images.append(dict(id=len(images) + 1, is_normal=False,
                               file_name=f'p/test/{name[2:]}/{k}.png',
                               image_label=cid[name]))
            anns.append(dict(id=len(anns) + 1, image_id=images[-1]['id'],
                             category_id=cid[name], bbox=[0, 0, 1, 1],
                             area=1, iscrowd=0, segmentation=[]))
    for k in range(both):
        images.append(dict(id=len(images) + 1, is_normal=False,
                           file_name=f'p/test/both/{k}.png',
                           image_label=cid['p/a']))
        for name in ('p/a', 'p/b'):
            anns.append(dict(id=len(anns) + 1, image_id=images[-1]['id'],
                             category_id=cid[name], bbox=[0, 0, 1, 1],
                             area=1, iscrowd=0, segmentation=[]))
    for k in range(normals):
        images.append(dict(id=len(images) + 1, is_normal=True,
                           file_name=f'p/test/good/{k}.png',
                           image_label=None))
    ann_dir.mkdir(parents=True, exist_ok=True)
    (ann_dir / 'train.json').write_text(json.dumps(coco(train, [])))
    (ann_dir / 'test.json').write_text(json.dumps(coco(images, anns)))


def test_split_counts_disjoint_and_seeded(tmp_path):
    ann = tmp_path / 'annotations'
    _write(ann, {'p/a': 10, 'p/b': 30, 'p/c': 3}, both=2)
    out = make_few_shot_split(ann, shots=5, val_per_class=2, seed=0)
    train = json.loads(Path(out['files']['train']).read_text())
    val = json.loads(Path(out['files']['val']).read_text())
    test = json.loads(Path(out['files']['test']).read_text())
    # the 2 images with a and b belong to the rarer class a (12 < 32)
    assert out['per_class'] == {'p/a': [5, 1, 6], 'p/b': [5, 2, 23],
                                'p/c': [1, 0, 2]}
    assert out['short_classes'] == ['p/c']
    owners = Counter(min(c) for c in _cats_of(train).values())
    assert owners == {'p/a': 5, 'p/b': 5, 'p/c': 1}
    names = [{im['file_name'] for im in c['images']}
             for c in (train, val, test)]
    assert not (names[0] & names[1] or names[0] & names[2]
                or names[1] & names[2])
    # test = source test split minus drawn images; source train left out
    assert len(names[2]) == 43 + 2 + 3 - len(names[0]) - len(names[1])
    assert not any('/train/' in n for s in names for n in s)
    assert out['left_out'] == 4
    # ids are consistent inside each file, categories kept
    for coco in (train, val, test):
        ids = {im['id'] for im in coco['images']}
        assert all(a['image_id'] in ids for a in coco['annotations'])
        assert [c['name'] for c in coco['categories']] == ['p/a', 'p/b',
                                                            'p/c']
    assert train['info']['few_shot']['seed'] == 0
    assert set(train['info']['few_shot']['sources']) == {'train.json',
                                                         'test.json'}
    # seeded: the same call gives the same files; another seed differs;
    # a larger N extends the smaller draw
    again = make_few_shot_split(ann, shots=5, val_per_class=2, seed=0,
                                out_dir=tmp_path / 'again')
    assert Path(again['files']['train']).read_text() == \
        Path(out['files']['train']).read_text()
    other = make_few_shot_split(ann, shots=5, val_per_class=2, seed=1,
                                out_dir=tmp_path / 'other')
    assert Path(other['files']['train']).read_text() != \
        Path(out['files']['train']).read_text()
    more = make_few_shot_split(ann, shots=8, val_per_class=0, seed=0,
                               out_dir=tmp_path / 'more')
    more_names = {im['file_name'] for im in json.loads(
        Path(more['files']['train']).read_text())['images']}
    assert names[0] <= more_names


def test_split_normals_and_errors(tmp_path, capsys):
    ann = tmp_path / 'annotations'
    _write(ann, {'p/a': 4}, normals=6)
    out = make_few_shot_split(ann, shots=2, val_per_class=0,
                              normal_per_category=2)
    train = json.loads(Path(out['files']['train']).read_text())
    assert sum(im['is_normal'] for im in train['images']) == 2
    with pytest.raises(ValueError, match='shots must be >= 1'):
        make_few_shot_split(ann, shots=0)
    with pytest.raises(FileNotFoundError, match='convert.py'):
        make_few_shot_split(tmp_path / 'nothing', shots=2)
    (ann / 'test.json').write_text('{"images": []}')
    assert main([str(ann), '--shots', '2']) == 1
    assert 'test.json: not a COCO file' in capsys.readouterr().err


def test_split_of_converted_mvtec_layout(tmp_path):
    """From the MVTec AD converter's output (defect-free train split): the
    defect images come from the test split and leave it."""
    from data_converters.convert import convert
    root = tmp_path / 'mvtec_ad'
    make_mvtec_layout(root)
    convert('mvtec_ad', str(root), str(tmp_path / 'imdd'), config={},
            progress=False)
    ann = tmp_path / 'imdd' / 'annotations'
    assert main([str(ann), '--shots', '200', '--val-per-class', '0']) == 0
    train = json.loads((ann / 'train_200shot.json').read_text())
    test = json.loads((ann / 'test_200shot.json').read_text())
    per_class = train['info']['few_shot']['per_class']
    # 2 crack images per category: at most half go to training
    assert per_class == {f'{c}/crack': dict(train=1, val=0, rest=1)
                         for c in ('bottle', 'cable', 'screw')}
    assert len(train['images']) == 3 and len(train['annotations']) == 3
    assert len(test['images']) == 3 * 4 - 3
    assert all('/test/' in im['file_name'] for im in test['images'])
