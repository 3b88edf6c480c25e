# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Open-vocabulary splits of a converted dataset (paper §4.1: train on base
categories, test on categories named only at test time).

Reads ``ANN_DIR/{train,test}.json`` written by ``convert.py`` and writes:

- ``train_base.json``: the training split without the novel categories.
  Images that contain a novel defect are dropped, never kept as "normal"
  images (their defect would teach the model that it is background);
- ``test_all.json``: the test split with every category (optionally a
  seeded, class-balanced subset of at most ``max_test_images`` images).

Box-only sources (e.g. NEU-DET) get each box as a rectangular mask, so a
mask model can train on them (weak supervision; documented in the output's
``info``).

Usage::

    python data_converters/open_vocab_split.py OUT/annotations \
        --novel hole [--max-test-images 200] [--seed 0]
"""
import argparse
import json
import os
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence


def _load(path: Path) -> Dict:
    if not path.is_file():
        raise FileNotFoundError(f'{path}: missing; run data_converters/'
                                'convert.py first')
    with open(path) as f:
        return json.load(f)


def _dump(data: Dict, path: Path) -> None:
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(data, f, sort_keys=True)
    os.replace(tmp, path)


def _box_masks(anns: List[Dict]) -> int:
    """Give box-only annotations a rectangle polygon; returns how many."""
    filled = 0
    for ann in anns:
        if not ann.get('segmentation'):
            x, y, w, h = ann['bbox']
            ann['segmentation'] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
            filled += 1
    return filled


def _subset(coco: Dict, keep_ids: set, categories: List[Dict]) -> Dict:
    cat_ids = {c['id'] for c in categories}
    return dict(
        coco,
        images=[im for im in coco['images'] if im['id'] in keep_ids],
        annotations=[
            a for a in coco['annotations']
            if a['image_id'] in keep_ids and a['category_id'] in cat_ids
        ],
        categories=categories)


def make_open_vocab_split(ann_dir,
                          novel: Optional[Sequence[str]] = None,
                          max_test_images: Optional[int] = None,
                          seed: int = 0) -> Dict:
    """Write ``train_base.json`` and ``test_all.json`` (see module doc).

    Args:
        ann_dir (str | Path): The converter's ``annotations`` folder.
        novel (Sequence[str] | str, optional): Novel category names (a
            comma-separated string is accepted); default: the last category
            by name that has annotations in the test split, or none when the
            dataset has a single category; ``'none'``: no novel category
            (closed-vocabulary training and test).
        max_test_images (int, optional): Cap on test images (None or 0: no
            cap), drawn round-robin over the image classes (normal, or the
            first annotated category, or the image-level label), each
            class's images in a seeded random order.
        seed (int): Seed of the test subset.

    Returns:
        dict: ``base``, ``novel`` and ``all`` category names (in category
        id order), ``dataset`` (the source name) and image counts.
    """
    ann_dir = Path(ann_dir)
    train = _load(ann_dir / 'train.json')
    test = _load(ann_dir / 'test.json')
    categories = sorted(test['categories'], key=lambda c: c['id'])
    names = [c['name'] for c in categories]
    if isinstance(novel, str):
        novel = [n.strip() for n in novel.split(',') if n.strip()]
    no_novel = novel is not None and [n.lower() for n in novel] == ['none']
    if max_test_images is not None and max_test_images < 0:
        raise ValueError(f'max_test_images must be >= 0 (0: no cap), got '
                         f'{max_test_images}')
    if no_novel or (not novel and len(categories) == 1):
        novel = []  # '--novel none', or one class: nothing to hold out
    elif not novel:
        used = {a['category_id'] for a in test['annotations']}
        used_names = sorted(c['name'] for c in categories if c['id'] in used)
        if not used_names:
            raise ValueError(f'{ann_dir / "test.json"}: no annotated '
                             'category to hold out; pass the novel names')
        novel = [used_names[-1]]
    novel = list(dict.fromkeys(novel))  # unique, in the given order
    unknown = [n for n in novel if n not in names]
    if unknown:
        raise ValueError(f'{ann_dir}: novel classes {unknown} are not among '
                         f'the categories {names}')
    base_cats = [c for c in categories if c['name'] not in novel]
    if novel and not base_cats:
        raise ValueError(f'{ann_dir}: every category {names} is novel; '
                         'keep at least one base category to train on')
    novel_ids = {c['id'] for c in categories if c['name'] in novel}

    # an image of a novel class leaves the training split: by annotation,
    # or by its image-level label (classification-only images)
    with_novel = {a['image_id'] for a in train['annotations']
                  if a['category_id'] in novel_ids}
    with_novel |= {im['id'] for im in train['images']
                   if im.get('image_label') in novel_ids}
    train_ids = {im['id'] for im in train['images']} - with_novel
    train_base = _subset(train, train_ids, base_cats)
    filled = _box_masks(train_base['annotations'])

    first_cat = {}
    for ann in sorted(test['annotations'], key=lambda a: a['id']):
        first_cat.setdefault(ann['image_id'], ann['category_id'])
    test_ids = [im['id'] for im in sorted(test['images'],
                                          key=lambda im: im['id'])]
    if max_test_images and len(test_ids) > max_test_images:
        image_label = {im['id']: im.get('image_label')
                       for im in test['images']}
        groups = defaultdict(list)
        for image_id in test_ids:
            key = first_cat.get(image_id, image_label[image_id])
            groups[-1 if key is None else key].append(image_id)
        rng = random.Random(seed)
        for ids in groups.values():
            rng.shuffle(ids)
        chosen, keys = [], sorted(groups)
        while len(chosen) < max_test_images:
            for key in keys:
                if groups[key] and len(chosen) < max_test_images:
                    chosen.append(groups[key].pop())
        test_ids = chosen
    test_all = _subset(test, set(test_ids), categories)
    filled += _box_masks(test_all['annotations'])

    note = dict(open_vocab_split=dict(novel=list(novel), seed=seed,
                                      boxes_as_masks=filled))
    train_base['info'] = dict(train.get('info', {}), **note)
    test_all['info'] = dict(test.get('info', {}), **note)
    _dump(train_base, ann_dir / 'train_base.json')
    _dump(test_all, ann_dir / 'test_all.json')
    source = (test['images'][0].get('source', ann_dir.parent.name)
              if test['images'] else ann_dir.parent.name)
    return dict(base=[c['name'] for c in base_cats], novel=list(novel),
                all=names, dataset=source,
                train_images=len(train_base['images']),
                test_images=len(test_all['images']),
                boxes_as_masks=filled)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('ann_dir')
    parser.add_argument('--novel', default=None,
                        help='comma-separated novel category names, or '
                        '"none" (default: the last annotated category; none '
                        'for a single-category dataset)')
    parser.add_argument('--max-test-images', type=int, default=None)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    try:
        summary = make_open_vocab_split(args.ann_dir, args.novel,
                                        args.max_test_images, args.seed)
    except (ValueError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
