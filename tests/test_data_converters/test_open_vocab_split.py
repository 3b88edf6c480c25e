# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Open-vocabulary splits: train on base categories, test on all."""
import json
from collections import Counter
from pathlib import Path

import pytest

from data_converters.open_vocab_split import main, make_open_vocab_split

CATS = ['scratch', 'crack', 'stain', 'hole']  # ids 1..4


def _rle_ann(ann_id, image_id, cat_id):
    return dict(id=ann_id, image_id=image_id, category_id=cat_id,
                segmentation=dict(size=[8, 8], counts='0`0'),
                area=4, bbox=[1.0, 1.0, 2.0, 2.0], iscrowd=0)


def _box_ann(ann_id, image_id, cat_id):
    return dict(id=ann_id, image_id=image_id, category_id=cat_id,
                segmentation=[], area=12, bbox=[2.0, 3.0, 4.0, 3.0],
                iscrowd=0)


def _coco(split, per_class, normals, box_only=False, label_only=()):
    """``per_class`` images per category with one annotation each (two for
    the first image of a class: itself and ``scratch``), ``normals`` normal
    images and classification-only images of the names in
    ``label_only``."""
    images, anns = [], []

    def image(label):
        images.append(dict(id=len(images) + 1,
                           file_name=f'{split}/{len(images)}.png', width=8,
                           height=8, is_normal=label is None,
                           image_label=label, split=split, source='fake'))
        return images[-1]['id']

    for cat_id, _ in enumerate(CATS, 1):
        for k in range(per_class):
            image_id = image(cat_id)
            make = _box_ann if box_only else _rle_ann
            anns.append(make(len(anns) + 1, image_id, cat_id))
            if k == 0 and cat_id != 1:  # a second defect on the image
                anns.append(make(len(anns) + 1, image_id, 1))
    for name in label_only:
        image(CATS.index(name) + 1)
    for _ in range(normals):
        image(None)
    categories = [dict(id=i, name=n, supercategory='defect')
                  for i, n in enumerate(CATS, 1)]
    return dict(info=dict(source='fake'), images=images, annotations=anns,
                categories=categories)


def _write(ann_dir: Path, **kwargs):
    ann_dir.mkdir(parents=True, exist_ok=True)
    box_only = kwargs.pop('box_only', False)
    for split in ('train', 'test'):
        (ann_dir / f'{split}.json').write_text(
            json.dumps(_coco(split, box_only=box_only, **kwargs)))
    return ann_dir


def _load(ann_dir, name):
    return json.loads((ann_dir / name).read_text())


def test_novel_images_dropped_not_relabelled(tmp_path):
    ann_dir = _write(tmp_path / 'ann', per_class=3, normals=2,
                     label_only=('hole', 'stain'))
    train = _load(ann_dir, 'train.json')
    summary = make_open_vocab_split(ann_dir, novel='hole')
    assert summary['base'] == ['scratch', 'crack', 'stain']
    assert summary['novel'] == ['hole']
    assert summary['all'] == CATS
    assert summary['dataset'] == 'fake'

    base = _load(ann_dir, 'train_base.json')
    assert [c['name'] for c in base['categories']] == summary['base']
    hole_images = {a['image_id'] for a in train['annotations']
                   if a['category_id'] == 4}
    hole_images |= {im['id'] for im in train['images']
                    if im['image_label'] == 4}
    assert len(hole_images) == 4  # 3 annotated + 1 classification-only
    kept = {im['id'] for im in base['images']}
    assert not kept & hole_images  # dropped, never kept as "normal"
    assert kept == {im['id'] for im in train['images']} - hole_images
    assert summary['train_images'] == len(kept) == len(train['images']) - 4
    # the hole images' other defects (scratch) leave with them
    assert all(a['category_id'] != 4 and a['image_id'] in kept
               for a in base['annotations'])
    normal_before = sum(im['is_normal'] for im in train['images'])
    assert sum(im['is_normal'] for im in base['images']) == normal_before
    assert base['info']['open_vocab_split']['novel'] == ['hole']
    assert base['info']['source'] == 'fake'

    test_all = _load(ann_dir, 'test_all.json')
    test = _load(ann_dir, 'test.json')
    assert [c['name'] for c in test_all['categories']] == CATS
    assert test_all['images'] == test['images']
    assert test_all['annotations'] == test['annotations']


def test_several_novel_and_default(tmp_path):
    ann_dir = _write(tmp_path / 'ann', per_class=2, normals=1)
    summary = make_open_vocab_split(ann_dir, novel='stain, hole')
    assert summary['novel'] == ['stain', 'hole']
    assert summary['base'] == ['scratch', 'crack']
    base = _load(ann_dir, 'train_base.json')
    assert {a['category_id'] for a in base['annotations']} == {1, 2}
    # default: the last annotated category by name
    assert make_open_vocab_split(ann_dir)['novel'] == ['stain']


def test_box_only_annotations_get_rectangles(tmp_path):
    ann_dir = _write(tmp_path / 'ann', per_class=2, normals=1,
                     box_only=True)
    summary = make_open_vocab_split(ann_dir, novel='hole')
    base = _load(ann_dir, 'train_base.json')
    test_all = _load(ann_dir, 'test_all.json')
    n = len(base['annotations']) + len(test_all['annotations'])
    assert summary['boxes_as_masks'] == n > 0
    for ann in base['annotations'] + test_all['annotations']:
        x, y, w, h = ann['bbox']
        assert ann['segmentation'] == [[x, y, x + w, y, x + w, y + h, x,
                                        y + h]]
    assert base['info']['open_vocab_split']['boxes_as_masks'] == n
    # the source files are untouched
    assert all(a['segmentation'] == []
               for a in _load(ann_dir, 'train.json')['annotations'])


def _image_class(coco):
    first = {}
    for ann in sorted(coco['annotations'], key=lambda a: a['id']):
        first.setdefault(ann['image_id'], ann['category_id'])
    return Counter(first.get(im['id'], -1) for im in coco['images'])


def test_max_test_images_balanced_and_deterministic(tmp_path):
    ann_dir = _write(tmp_path / 'ann', per_class=6, normals=10)
    summary = make_open_vocab_split(ann_dir, novel='hole',
                                    max_test_images=10, seed=1)
    assert summary['test_images'] == 10
    first = _load(ann_dir, 'test_all.json')
    assert len(first['images']) == 10
    # 5 image classes (normal + 4 defects): two images each
    assert _image_class(first) == {-1: 2, 1: 2, 2: 2, 3: 2, 4: 2}
    kept = {im['id'] for im in first['images']}
    assert all(a['image_id'] in kept for a in first['annotations'])

    make_open_vocab_split(ann_dir, novel='hole', max_test_images=10, seed=1)
    assert _load(ann_dir, 'test_all.json') == first  # rerun: identical
    make_open_vocab_split(ann_dir, novel='hole', max_test_images=10, seed=2)
    other = _load(ann_dir, 'test_all.json')
    assert _image_class(other) == _image_class(first)
    assert {im['id'] for im in other['images']} != kept
    # a cap above the size keeps everything; 0 means no cap
    for cap in (1000, 0):
        make_open_vocab_split(ann_dir, novel='hole', max_test_images=cap)
        assert len(_load(ann_dir, 'test_all.json')['images']) == 34


def test_unbalanced_cap_fills_from_larger_classes(tmp_path):
    ann_dir = _write(tmp_path / 'ann', per_class=1, normals=20)
    make_open_vocab_split(ann_dir, novel='hole', max_test_images=12)
    counts = _image_class(_load(ann_dir, 'test_all.json'))
    assert counts == {-1: 8, 1: 1, 2: 1, 3: 1, 4: 1}


def test_errors(tmp_path, capsys):
    ann_dir = _write(tmp_path / 'ann', per_class=1, normals=1)
    with pytest.raises(ValueError, match=r"\['dent'\].*scratch"):
        make_open_vocab_split(ann_dir, novel='dent')
    with pytest.raises(ValueError, match='at least one base'):
        make_open_vocab_split(ann_dir, novel=CATS)
    with pytest.raises(ValueError, match='max_test_images'):
        make_open_vocab_split(ann_dir, novel='hole', max_test_images=-1)
    with pytest.raises(FileNotFoundError, match='train.json'):
        make_open_vocab_split(tmp_path / 'missing', novel='hole')
    assert main([str(ann_dir), '--novel', 'dent']) == 1
    assert 'dent' in capsys.readouterr().err
    assert main([str(ann_dir), '--novel', 'hole']) == 0
    assert json.loads(capsys.readouterr().out)['novel'] == ['hole']


def test_no_novel_class_single_class_and_none(tmp_path):
    # one category (KolektorSDD's crack): nothing is held out by default
    ann_dir = tmp_path / 'one'
    ann_dir.mkdir()
    for split in ('train', 'test'):
        d = _coco(split, per_class=2, normals=1)
        d['annotations'] = [a for a in d['annotations']
                            if a['category_id'] == 1]
        d['images'] = [im for im in d['images']
                       if im['image_label'] in (None, 1)]
        d['categories'] = d['categories'][:1]
        (ann_dir / f'{split}.json').write_text(json.dumps(d))
    summary = make_open_vocab_split(ann_dir)
    assert summary['novel'] == [] and summary['base'] == ['scratch']
    assert summary['train_images'] == len(_load(ann_dir,
                                                'train.json')['images'])
    for novel in ('', None, []):
        assert make_open_vocab_split(ann_dir, novel)['novel'] == []
    # naming the only class is still an error
    with pytest.raises(ValueError, match='at least one base'):
        make_open_vocab_split(ann_dir, novel='scratch')
    # 'none' on a multi-class dataset: closed vocabulary
    multi = _write(tmp_path / 'multi', per_class=2, normals=1)
    summary = make_open_vocab_split(multi, novel='none')
    assert summary['novel'] == [] and summary['base'] == CATS
    base = _load(multi, 'train_base.json')
    assert len(base['images']) == len(_load(multi, 'train.json')['images'])
    assert main([str(multi), '--novel', 'none']) == 0
