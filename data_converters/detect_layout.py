# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Which converter reads a folder? Detection from the published layouts.

:func:`detect_sources` looks at a dataset root (its entries and, for a few
layouts, one level below; no image is opened) and returns the SOURCE names
whose published layout it matches; :func:`layout_summary` gives the
one-line input tree of every known layout, for error messages. Used by
``tools/demo.py --data DIR``; a user can always pass ``--source NAME``.

A ``dataset.yaml`` in the root wins over any layout: it is the user's
description of the tree (``folder``, or ``generic`` when it names a
``format``); see :func:`dataset_config`.
"""
import json
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

PathLike = str


def _names(root: Path) -> Dict[str, Path]:
    try:
        return {p.name: p for p in root.iterdir()
                if not p.name.startswith('.')}
    except OSError:
        return {}


def _dirs(root: Path) -> List[Path]:
    return sorted(p for p in _names(root).values() if p.is_dir())


def _has(root: Path, *rels: str) -> bool:
    return all((root / r).exists() for r in rels)


def _any_child(root: Path, *rels: str) -> bool:
    """Some sub-folder ``d`` of root has every ``d/rel``."""
    return any(all((d / r).exists() for r in rels) for d in _dirs(root))


def _first_file(folder: Path, pattern: str) -> Optional[Path]:
    try:
        return next(iter(sorted(folder.glob(pattern))), None)
    except OSError:
        return None


def _coco_categories(path: Path) -> List[str]:
    """Category names of a COCO JSON (empty when not one)."""
    try:
        with open(path, encoding='utf-8-sig') as f:
            d = json.load(f)
        return [str(c.get('name')) for c in d.get('categories', [])]
    except (OSError, ValueError, AttributeError):
        return []


def _neu_det(r: Path) -> bool:
    if _has(r, 'IMAGES', 'ANNOTATIONS'):
        return True
    return any(_has(r, f'{s}/images', f'{s}/annotations')
               for s in ('train', 'validation'))


def _dagm(r: Path) -> bool:
    return any(re.fullmatch(r'Class\d+', d.name) and (
        _has(d, 'Train') or _has(d, d.name, 'Train')) for d in _dirs(r))


def _coco_any(r: Path) -> bool:
    if _has(r, 'annotations/lb101') or _has(r, 'annotations/lb201'):
        return False  # SSGD
    return _has(r, 'annotations.json') or bool(
        _first_file(r, 'annotations/*.json')) or bool(
            _first_file(r, '*/_annotations.coco.json'))


def _baijiu(r: Path) -> bool:
    return _has(r, 'annotations.json', 'images') and \
        '背景' in _coco_categories(r / 'annotations.json')


def _tig(r: Path) -> bool:
    return (_has(r, 'train/train.json') or _has(r, 'test/test.json')) and \
        not _has(r, 'annotations.json')


def _yolo(r: Path) -> bool:
    return _has(r, 'images', 'labels') and bool(
        _first_file(r / 'labels', '**/*.txt'))


def _labelme(r: Path) -> bool:
    for p in sorted(r.glob('*.json'))[:3] + sorted(r.glob('*/*.json'))[:3]:
        try:
            d = json.loads(p.read_text(encoding='utf-8'))
        except (OSError, ValueError):
            continue
        if isinstance(d, dict) and 'shapes' in d and 'imagePath' in d:
            return True
    return False


#: (SOURCE, one-line input tree, predicate on the root). Order: specific
#: layouts first; generic formats last.
LAYOUTS: List[Tuple[str, str, Callable[[Path], bool]]] = [
    ('magnetic_tile', 'MT_<Class>/Imgs/<stem>.jpg + <stem>.png masks',
     lambda r: any(d.name.startswith('MT_') for d in _dirs(r))),
    ('neu_det', 'IMAGES/*.jpg + ANNOTATIONS/*.xml (or Kaggle '
     '{train,validation}/images/<class>/ + annotations/)', _neu_det),
    ('elpv', 'labels.csv + images/cellNNNN.png',
     lambda r: _has(r, 'labels.csv', 'images')),
    ('kolektorsdd', 'kosNN/PartN.jpg + PartN_label.bmp',
     lambda r: any(re.fullmatch(r'kos\d+', d.name) for d in _dirs(r))),
    ('kolektorsdd2', '{train,test}/<n>.png + <n>_GT.png',
     lambda r: _has(r, 'train') and bool(_first_file(r / 'train',
                                                      '*_GT.png'))),
    ('mvtec_ad', '<object>/{train/good,test/<defect>,ground_truth/<defect>}/',
     lambda r: _any_child(r, 'train/good', 'ground_truth')),
    ('mvtec_ad2', '<object>/{train/good,test_public/{good,bad,'
     'ground_truth}}/', lambda r: _any_child(r, 'test_public')),
    ('btad', '<NN>/{train/ok,test/{ok,ko},ground_truth/ko}/',
     lambda r: _any_child(r, 'train/ok')),
    ('visa', 'split_csv/1cls.csv + <object>/Data/{Images,Masks}/',
     lambda r: _has(r, 'split_csv')),
    ('dagm2007', 'ClassN/{Train,Test}/ + Label/Labels.txt', _dagm),
    ('pcb', 'images/<Defect>/*.jpg + Annotations/<Defect>/*.xml',
     lambda r: _has(r, 'images/Missing_hole') or
     _has(r, 'Annotations/Missing_hole')),
    ('deeppcb', 'PCBData/{trainval,test}.txt + groupNNNNN/',
     lambda r: _has(r, 'PCBData') or (
         _has(r, 'trainval.txt') and any(d.name.startswith('group')
                                         for d in _dirs(r)))),
    ('wm811k', 'LSWMD.pkl', lambda r: _has(r, 'LSWMD.pkl')),
    ('sdnet2018', '{D/{CD,UD},P/{CP,UP},W/{CW,UW}}/*.jpg',
     lambda r: _has(r, 'D/CD') or _has(r, 'W/CW') or _has(r, 'P/CP')),
    ('tianchi_aluminum', '无瑕疵样本/ + 瑕疵样本/<class>/ (round 1) or '
     '单瑕疵图片/ + 多瑕疵图片/ (round 2)',
     lambda r: any(n in _names(r) for n in ('无瑕疵样本', '瑕疵样本',
                                           '单瑕疵图片', '无瑕疵图片'))),
    ('tianchi_fabric', 'defect_Images/ + normal_Images/ + '
     'Annotations/anno_train.json',
     lambda r: _has(r, 'defect_Images') or
     _has(r, 'Annotations/anno_train.json')),
    ('tianchi_baijiu', 'images/ + annotations.json (COCO, category 0 背景)',
     _baijiu),
    ('gc10_det', '{1..10}/*.jpg + lable/*.xml',
     lambda r: (_has(r, 'lable') or _has(r, 'label')) and _has(r, '1')),
    ('ssgd', 'images_lb101/ + images_lb201/ + annotations/{lb101,lb201}/'
     '*.json (COCO folds)',
     lambda r: _has(r, 'annotations/lb101') or _has(r, 'annotations/lb201')),
    ('tig_al5083', '{train,test}/<run>/*.png + train/train.json, '
     'test/test.json (image -> class id)', _tig),
    ('voc', 'JPEGImages/ + Annotations/*.xml [+ ImageSets/Main/*.txt] '
     '(also steel_pipe_weld)',
     lambda r: _has(r, 'JPEGImages', 'Annotations')),
    ('coco', 'annotations.json or annotations/instances_<split>.json + '
     'images', lambda r: _coco_any(r) and not _baijiu(r)),
    ('yolo', 'images/[split/] + labels/[split/]*.txt (needs dataset.yaml '
     'with classes)', _yolo),
    ('labelme', '**/<name>.json (LabelMe) beside the images', _labelme),
]


def dataset_config(root: PathLike) -> Optional[Path]:
    """``ROOT/dataset.yaml`` (or ``.yml``) when present."""
    for name in ('dataset.yaml', 'dataset.yml'):
        p = Path(root) / name
        if p.is_file():
            return p
    return None


def config_source(config_path: Path) -> str:
    """SOURCE for a ``dataset.yaml``: ``generic`` when it names a
    ``format``, else ``folder``."""
    import yaml
    try:
        cfg = yaml.safe_load(config_path.read_text(encoding='utf-8')) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f'{config_path}: cannot parse ({e})') from None
    if not isinstance(cfg, dict):
        raise ValueError(f'{config_path}: must be a mapping')
    return 'generic' if cfg.get('format') else 'folder'


def detect_sources(root: PathLike) -> List[str]:
    """SOURCE names whose published layout matches ``root`` (in
    :data:`LAYOUTS` order; empty when none does)."""
    r = Path(root)
    if not r.is_dir():
        raise ValueError(f'{r}: not a directory')
    found = [name for name, _, pred in LAYOUTS if pred(r)]
    if 'tianchi_baijiu' in found and 'coco' in found:
        found.remove('coco')
    return found


def layout_hints(root: PathLike) -> List[str]:
    """Near misses: a folder one level too deep (one MVTec AD / BTAD /
    MVTec AD 2 object, one KolektorSDD item, one DAGM class)."""
    r = Path(root)
    hints = []
    for source, marks in (('mvtec_ad', ('train/good', 'ground_truth')),
                          ('mvtec_ad2', ('test_public', )),
                          ('btad', ('train/ok', ))):
        if all((r / m).exists() for m in marks):
            hints.append(f'{r} looks like one {source} object folder; '
                         f'pass its parent {r.parent} (the converter reads '
                         f'<root>/<object>/...; config "categories" selects '
                         'objects)')
    if re.fullmatch(r'kos\d+', r.name):
        hints.append(f'{r} looks like one KolektorSDD item; pass its parent '
                     f'{r.parent}')
    if re.fullmatch(r'Class\d+', r.name) and _has(r, 'Train'):
        hints.append(f'{r} looks like one DAGM 2007 class; pass its parent '
                     f'{r.parent}')
    return hints


def layout_summary() -> str:
    """One line per known layout: ``SOURCE: tree``."""
    width = max(len(n) for n, _, _ in LAYOUTS)
    return '\n'.join(f'  {n:<{width}}  {tree}' for n, tree, _ in LAYOUTS)
