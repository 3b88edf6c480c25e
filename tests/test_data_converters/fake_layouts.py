# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Tiny fake datasets written on disk in each native layout (anomalib
style). Every writer returns the dataset root."""
import json
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np


def write_img(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix, img)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def gray(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(60, 200, (h, w), dtype=np.uint8)


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:max(8, int(len(data) * keep))])
    return path


# --------------------------------------------------------------------------
def make_magnetic_tile(root: Path) -> Path:
    """2 images per defect class (Crack: 1 + an empty mask in Uneven), 3
    Free. Masks anti-aliased: a 255 core and a 100-valued halo."""
    root = Path(root)
    k = 0
    for cls in ('Blowhole', 'Break', 'Crack', 'Fray', 'Uneven', 'Free'):
        n = 3 if cls == 'Free' else 2
        for i in range(n):
            k += 1
            h, w = 40 + 4 * i, 30 + 2 * k
            stem = f'exp{i}_num_{k}'
            d = root / f'MT_{cls}' / 'Imgs'
            write_img(d / f'{stem}.jpg', gray(h, w, k))
            m = np.zeros((h, w), np.uint8)
            if cls != 'Free' and not (cls == 'Uneven' and i == 1):
                m[5:15, 4:8] = 100  # halo: below threshold
                m[6:14, 5:7] = 255  # core: 8 x 2 = 16 px
            write_img(d / f'{stem}.png', m)
    return root


NEU_CLASSES = ('crazing', 'inclusion', 'patches', 'pitted_surface',
               'rolled-in_scale', 'scratches')


def neu_xml(fname: str, objs: List[Tuple[str, List[int], int]],
            size: Tuple[int, int] = (200, 200)) -> str:
    parts = ['<annotation>\n\t<folder>x</folder>\n',
             f'\t<filename>{fname}</filename>\n',
             f'\t<size>\n\t\t<width> {size[0]} </width>\n'
             f'\t\t<height>{size[1]}</height>\n\t\t<depth>1</depth>\n'
             '\t</size>\n']
    for name, (x0, y0, x1, y1), diff in objs:
        parts.append(f'\t<object>\n\t\t<name>  {name}\n</name>\n'
                     f'\t\t<difficult>{diff}</difficult>\n'
                     f'\t\t<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>'
                     f'<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>\n'
                     '\t</object>\n')
    parts.append('</annotation>\n')
    return ''.join(parts)


def make_neu_det(root: Path) -> Path:
    """One image per class in IMAGES (+ one in Validation_Images);
    ``patches_1`` holds a ``scratches`` box too (XML class != file
    class) marked difficult."""
    root = Path(root)
    for k, cls in enumerate(NEU_CLASSES):
        img = cv2.cvtColor(gray(200, 200, k), cv2.COLOR_GRAY2BGR)
        write_img(root / 'IMAGES' / f'{cls}_1.jpg', img)
        objs = [(cls, [10 + k, 20, 60 + k, 180], 0)]
        if cls == 'patches':
            objs.append(('scratches', [100, 10, 190, 30], 1))
        (root / 'ANNOTATIONS').mkdir(parents=True, exist_ok=True)
        (root / 'ANNOTATIONS' / f'{cls}_1.xml').write_text(
            neu_xml(f'{cls}_1.jpg', objs))
    img = cv2.cvtColor(gray(200, 200, 99), cv2.COLOR_GRAY2BGR)
    write_img(root / 'Validation_Images' / 'inclusion_2.jpg', img)
    (root / 'Validation_Annotations').mkdir(parents=True, exist_ok=True)
    (root / 'Validation_Annotations' / 'inclusion_2.xml').write_text(
        neu_xml('inclusion_2.jpg', [('inclusion', [1, 1, 50, 50], 0)]))
    return root


def make_elpv(root: Path) -> Path:
    """8 cells: probabilities 0, 1/3, 2/3, 1 for mono and poly."""
    root = Path(root)
    rows = []
    k = 0
    for kind in ('mono', 'poly'):
        for p in ('0.0', '0.3333333333333333', '0.6666666666666666', '1.0'):
            k += 1
            write_img(root / 'images' / f'cell{k:04d}.png', gray(30, 30, k))
            rows.append(f'images/cell{k:04d}.png  {p}     {kind}')
    (root / 'labels.csv').write_text('\n'.join(rows) + '\n')
    return root


# --------------------------------------------------------------------------
def make_folder_dataset(root: Path, mask_mode: str = 'dir') -> Path:
    """``images/{train,test}/{good,scratch,dent}/*.png`` with masks in
    ``masks/...`` (mask_mode 'dir'), beside as ``*_mask.png`` ('suffix'),
    or none ('none')."""
    root = Path(root)
    k = 0
    for split in ('train', 'test'):
        for cls in ('good', 'scratch', 'dent'):
            for i in range(2):
                k += 1
                rel = f'{split}/{cls}/{i:03d}.png'
                write_img(root / 'images' / rel, gray(32, 48, k))
                if cls == 'good' or mask_mode == 'none':
                    continue
                m = np.zeros((32, 48), np.uint8)
                if cls == 'scratch':
                    m[4:6, 5:40] = 255
                else:
                    m[10:20, 10:20] = 255
                if mask_mode == 'dir':
                    write_img(root / 'masks' / rel, m)
                else:
                    write_img(root / 'images' /
                              rel.replace('.png', '_mask.png'), m)
    return root


def make_voc_dataset(root: Path) -> Path:
    root = Path(root)
    (root / 'Annotations').mkdir(parents=True, exist_ok=True)
    sets = {'train': [], 'test': []}
    for k in range(4):
        stem = f'img{k}'
        write_img(root / 'JPEGImages' / f'{stem}.jpg', gray(60, 80, k))
        objs = [] if k == 3 else [('dent', [5, 5, 20 + k, 30], 0)]
        if k == 1:
            objs.append(('scratch', [40, 10, 70, 15], 1))
        (root / 'Annotations' / f'{stem}.xml').write_text(
            neu_xml(f'{stem}.jpg', objs, size=(80, 60)))
        sets['train' if k < 2 else 'test'].append(stem)
    (root / 'ImageSets' / 'Main').mkdir(parents=True, exist_ok=True)
    for s, names in sets.items():
        (root / 'ImageSets' / 'Main' / f'{s}.txt').write_text(
            '\n'.join(names) + '\n')
    return root


def make_yolo_dataset(root: Path, seg: bool = False) -> Path:
    root = Path(root)
    for split in ('train', 'val'):
        for k in range(3):
            rel = f'{split}/im{k}'
            write_img(root / 'images' / f'{rel}.jpg', gray(40, 40, k))
            if k == 2:
                continue  # background image: no label file
            lab = root / 'labels' / f'{rel}.txt'
            lab.parent.mkdir(parents=True, exist_ok=True)
            if seg:
                lab.write_text(f'{k} 0.1 0.1 0.5 0.1 0.5 0.4 0.1 0.4\n')
            else:
                lab.write_text(f'{k} 0.5 0.5 0.25 0.5\n')
    return root


def make_labelme_dataset(root: Path) -> Path:
    root = Path(root)
    shapes: Dict[str, list] = {
        'a': [{'label': 'scratch', 'shape_type': 'polygon',
               'points': [[2, 2], [30, 2], [30, 6], [2, 6]]},
              {'label': 'dent', 'shape_type': 'rectangle',
               'points': [[10, 20], [20, 35]]}],
        'b': [{'label': 'dent', 'shape_type': 'circle',
               'points': [[20, 20], [25, 20]]}],
        'c': [],
    }
    for k, (stem, sh) in enumerate(sorted(shapes.items())):
        write_img(root / 'data' / f'{stem}.png', gray(40, 50, k))
        (root / 'data' / f'{stem}.json').write_text(json.dumps({
            'version': '5.0.1', 'shapes': sh, 'imagePath': f'{stem}.png',
            'imageHeight': 40, 'imageWidth': 50, 'imageData': None}))
    return root
