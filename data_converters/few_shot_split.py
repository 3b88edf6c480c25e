# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""N-samples-per-class training splits of a converted dataset, as data.

The paper fine-tunes Stage 2 and YOLOv8 on 200 defect samples per class
(Table 4, §5.3.2) and sweeps N in Figure 11 / Table 13. The native splits
of MVTec AD and VisA cannot provide that: their training images are
defect-free, every defect image is in the test split. This tool pools the
converter's COCO files, draws the training images per class and writes a
disjoint test split, so every method reads the same three files and every
table counts its samples from the training file actually used.

Input (written by ``data_converters/convert.py``)::

    OUT/annotations/train.json    (COCO instances + imdd-mm image fields)
    OUT/annotations/val.json      (optional)
    OUT/annotations/test.json

Output (beside the input, or in ``--out-dir``)::

    train_<N>shot.json   N images per class (fewer where a class has fewer,
                         see ``--max-train-fraction``), plus
                         ``--normal-per-category`` defect-free images
    val_<N>shot.json     ``--val-per-class`` more images per class
    test_<N>shot.json    the source test split without the drawn images
                         (a training image is never a test image); source
                         train / val images that were not drawn are left
                         out. ``info.few_shot`` of each file records the
                         seed, N, the source files' sha256 and the
                         per-class counts

Sampling: an image's class is the COCO category of its annotations (or its
``image_label``); an image with several categories belongs to the rarest
one, so each image is drawn once. Classes are drawn independently, each in
a seeded order (``random.Random(f'{seed}:{class}')``) over the images sorted
by ``file_name``: the split depends only on the files and the seed, and a
larger N extends a smaller N's draw. The defect-free images are stratified
by product (``--product-key``: the first path component of ``file_name``
by default, e.g. ``bottle/`` in MVTec AD) in the same way. Category names
such as MVTec AD's ``bottle/broken_large`` are product and defect type at
once, so per-class sampling is stratified by both.

Usage::

    python data_converters/few_shot_split.py data/imdd/mvtec_ad/annotations \
        --shots 200 [--val-per-class 5] [--normal-per-category 0] \
        [--max-train-fraction 0.5] [--seed 0]

Licence: Apache-2.0 (imdd-mm). The splits inherit the source data licence.
"""
import argparse
import hashlib
import json
import math
import os
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

SOURCE_SPLITS = ('train', 'val', 'test')


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _load(path: Path) -> Dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'{path}: not a JSON file: {e}') from e
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(data.get(key), list):
            raise ValueError(f'{path}: not a COCO file (no list {key!r})')
    return data


def _dump(data: Dict, path: Path) -> None:
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(data, f, sort_keys=True)
    os.replace(tmp, path)


def _product(image: Dict, key: str) -> str:
    if key == 'path':
        name = str(image['file_name']).replace(os.sep, '/')
        return name.split('/', 1)[0] if '/' in name else ''
    return str(image.get(key) or '')


def _draw(ids: List[str], k: int, key: str, seed: int) -> List[str]:
    order = sorted(ids)
    random.Random(f'{seed}:{key}').shuffle(order)
    return order[:k]


def make_few_shot_split(ann_dir,
                        shots: int,
                        val_per_class: Optional[int] = None,
                        normal_per_category: int = 0,
                        max_train_fraction: float = 0.5,
                        seed: int = 0,
                        out_dir=None,
                        product_key: str = 'path') -> Dict:
    """Write ``train_<N>shot.json``, ``val_<N>shot.json`` and
    ``test_<N>shot.json`` (see module doc).

    Args:
        ann_dir (str | Path): the converter's ``annotations`` folder.
        shots (int): N, training images per class (>= 1).
        val_per_class (int, optional): validation images per class;
            default ``max(1, N // 10)``; 0 writes an empty-of-defects val.
        normal_per_category (int): defect-free images per product in the
            training split (the rest go to the test split).
        max_train_fraction (float): at most this fraction of a class's
            images go to train + val, so each class keeps test images;
            1 allows drawing every image.
        seed (int): sampling seed.
        out_dir (str | Path, optional): output folder; default ``ann_dir``.
        product_key (str): ``'path'`` (first ``file_name`` component) or an
            image field naming the product.

    Returns:
        dict: ``files``, ``train`` / ``val`` / ``test`` / ``left_out``
        image counts, ``per_class`` ``{name: [train, val, rest]}`` and
        ``short_classes`` (classes with fewer than N training images).
    """
    ann_dir = Path(ann_dir)
    out_dir = Path(out_dir) if out_dir is not None else ann_dir
    if int(shots) < 1:
        raise ValueError(f'shots must be >= 1, got {shots}')
    shots = int(shots)
    val_per_class = max(1, shots // 10) if val_per_class is None else int(
        val_per_class)
    if val_per_class < 0 or normal_per_category < 0:
        raise ValueError('val_per_class and normal_per_category must be '
                         '>= 0')
    if not 0 < max_train_fraction <= 1:
        raise ValueError('max_train_fraction must be in (0, 1], got '
                         f'{max_train_fraction}')
    sources = [ann_dir / f'{s}.json' for s in SOURCE_SPLITS
               if (ann_dir / f'{s}.json').is_file()]
    if not any(p.name == 'test.json' for p in sources) and not any(
            p.name == 'train.json' for p in sources):
        raise FileNotFoundError(f'{ann_dir}: no train.json / test.json; run '
                                'data_converters/convert.py first')

    # pool the source files; images are keyed by file_name (ids restart
    # per file), categories by name
    categories: Dict[str, Dict] = {}
    images: Dict[str, Dict] = {}
    source_split: Dict[str, str] = {}
    anns: Dict[str, List[Dict]] = defaultdict(list)
    for path in sources:
        coco = _load(path)
        id2name = {}
        for c in coco['categories']:
            id2name[c['id']] = c['name']
            categories.setdefault(c['name'], c)
        by_id = {}
        for im in coco['images']:
            name = str(im['file_name'])
            if name in images:
                raise ValueError(f'{path}: image {name} also appears in '
                                 'another split file')
            images[name] = im
            source_split[name] = path.stem
            by_id[im['id']] = name
        for a in coco['annotations']:
            if a['image_id'] not in by_id:
                raise ValueError(f'{path}: annotation {a.get("id")} names '
                                 f'unknown image {a["image_id"]}')
            if a['category_id'] not in id2name:
                raise ValueError(f'{path}: annotation {a.get("id")} names '
                                 f'unknown category {a["category_id"]}')
            anns[by_id[a['image_id']]].append(
                dict(a, category_id=id2name[a['category_id']]))
        for im in coco['images']:
            label = im.get('image_label')
            if label is not None and label not in id2name:
                raise ValueError(f'{path}: image {im["file_name"]} has '
                                 f'unknown image_label {label}')
            im['_label_name'] = id2name.get(label)
    if not images:
        raise ValueError(f'{ann_dir}: the COCO files hold no image')

    classes_of = {}
    for name, im in images.items():
        cats = {a['category_id'] for a in anns[name]}
        if not cats and im.get('_label_name') is not None:
            cats = {im['_label_name']}
        classes_of[name] = cats
    count = defaultdict(int)
    for cats in classes_of.values():
        for c in cats:
            count[c] += 1
    members: Dict[str, List[str]] = defaultdict(list)
    normals: Dict[str, List[str]] = defaultdict(list)
    for name, cats in classes_of.items():
        if cats:  # the rarest class (ties by name) owns the image
            members[min(cats, key=lambda c: (count[c], c))].append(name)
        else:
            normals[_product(images[name], product_key)].append(name)

    train, val = set(), set()
    per_class, short = {}, []
    for cls in sorted(members):
        ids = members[cls]
        budget = math.floor(len(ids) * max_train_fraction)
        n_train = min(shots, budget)
        n_val = min(val_per_class, budget - n_train)
        order = _draw(ids, n_train + n_val, f'class:{cls}', seed)
        train.update(order[:n_train])
        val.update(order[n_train:])
        per_class[cls] = [n_train, n_val, len(ids) - n_train - n_val]
        if n_train < shots:
            short.append(cls)
    for product in sorted(normals):
        ids = normals[product]
        k = min(normal_per_category,
                math.floor(len(ids) * max_train_fraction))
        train.update(_draw(ids, k, f'normal:{product}', seed))
    if not train:
        raise ValueError(f'{ann_dir}: no training image could be drawn '
                         f'(shots={shots}, max_train_fraction='
                         f'{max_train_fraction}): no annotated class with '
                         'enough images')
    test = {n for n in images if source_split[n] == 'test'} - train - val
    left_out = len(images) - len(train) - len(val) - len(test)

    cat_list = sorted(categories.values(), key=lambda c: c['id'])
    name2id = {c['name']: c['id'] for c in cat_list}
    info = dict(few_shot=dict(
        shots=shots, val_per_class=val_per_class,
        normal_per_category=normal_per_category,
        max_train_fraction=max_train_fraction, seed=seed,
        sources={p.name: _sha256(p) for p in sources},
        per_class={k: dict(train=v[0], val=v[1], rest=v[2])
                   for k, v in per_class.items()},
        left_out=left_out,
        short_classes=short))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, names in (('train', train), ('val', val), ('test', test)):
        out_images, out_anns = [], []
        for name in sorted(names):
            src = images[name]
            im = {k: v for k, v in src.items() if k != '_label_name'}
            if src.get('_label_name') is not None:
                im['image_label'] = name2id[src['_label_name']]
            im['id'] = len(out_images) + 1
            im['split'] = split
            out_images.append(im)
            for a in anns[name]:
                out_anns.append(dict(a, id=len(out_anns) + 1,
                                     image_id=im['id'],
                                     category_id=name2id[a['category_id']]))
        path = out_dir / f'{split}_{shots}shot.json'
        _dump(dict(info=dict(info, split=split), images=out_images,
                   annotations=out_anns, categories=cat_list), path)
        files[split] = str(path)
    return dict(files=files, train=len(train), val=len(val), test=len(test),
                left_out=left_out, per_class=per_class, short_classes=short)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('ann_dir', help="the converter's annotations folder")
    parser.add_argument('--shots', type=int, required=True,
                        help='training images per class (N)')
    parser.add_argument('--val-per-class', type=int, default=None,
                        help='validation images per class (default N//10, '
                        'at least 1)')
    parser.add_argument('--normal-per-category', type=int, default=0,
                        help='defect-free training images per product')
    parser.add_argument('--max-train-fraction', type=float, default=0.5,
                        help='cap of train+val images per class, as a '
                        'fraction of the class (keeps test images)')
    parser.add_argument('--product-key', default='path',
                        help="'path' (first file_name component) or an "
                        'image field')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out-dir', default=None)
    args = parser.parse_args(argv)
    try:
        summary = make_few_shot_split(
            args.ann_dir, args.shots, args.val_per_class,
            args.normal_per_category, args.max_train_fraction, args.seed,
            args.out_dir, args.product_key)
    except (ValueError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    if summary['short_classes']:
        print(f'note: {len(summary["short_classes"])} classes have fewer '
              f'than {args.shots} training images (see per_class): '
              + ', '.join(summary['short_classes'][:10]), file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
