# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Helpers for the source-converter tests: tiny images and masks written in
each dataset's native layout, conversion and COCO loading."""
import json
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
from pycocotools.coco import COCO

_counter = [0]


def write_img(path: Path, h: int = 32, w: int = 40, gray: bool = False,
              seed: Optional[int] = None) -> Path:
    """A small random image (distinct bytes per call)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _counter[0] += 1
    rng = np.random.default_rng(_counter[0] if seed is None else seed)
    shape = (h, w) if gray else (h, w, 3)
    assert cv2.imwrite(str(path), rng.integers(0, 256, shape, np.uint8))
    return path


def write_mask(path: Path, h: int = 32, w: int = 40,
               rects: Sequence[Tuple[int, int, int, int, int]] = (
                   (4, 12, 5, 15, 255), )) -> Path:
    """Mask with filled rectangles ``(y0, y1, x0, x1, value)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((h, w), np.uint8)
    for y0, y1, x0, x1, v in rects:
        m[y0:y1, x0:x1] = v
    assert cv2.imwrite(str(path), m)
    return path


def write_voc(path: Path, filename: str, w: int, h: int, objects) -> Path:
    """Pascal VOC XML with ``objects`` = [(name, x0, y0, x1, y1)]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    objs = ''.join(
        f'<object><name>{n}</name><difficult>0</difficult><bndbox>'
        f'<xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax>'
        '</bndbox></object>' for n, a, b, c, d in objects)
    path.write_text(f'<annotation><filename>{filename}</filename><size>'
                    f'<width>{w}</width><height>{h}</height><depth>3</depth>'
                    f'</size>{objs}</annotation>')
    return path


def convert(source: str, root: Path, out: Path,
            config: Optional[dict] = None, **kw) -> Dict[str, COCO]:
    """Run the converter, check the common output contract, and return
    {split: COCO}."""
    from data_converters.convert import convert as run
    summary = run(source, str(root), str(out), config=config or {},
                  progress=False, **kw)
    cats = json.loads((out / 'categories.json').read_text())
    assert cats and all(c['imdd_id'] is not None for c in cats), cats
    cocos = {}
    for split in summary['splits']:
        coco = COCO(str(out / 'annotations' / f'{split}.json'))
        for img in coco.dataset['images']:
            assert img['source'] == source
            assert img['split'] == split
            assert (root / img['file_name']).is_file()
            assert isinstance(img['caption'], str) and img['caption']
            if img['is_normal']:
                assert not coco.getAnnIds(imgIds=[img['id']])
        for ann in coco.dataset['annotations']:
            seg = ann['segmentation']
            if isinstance(seg, dict):  # RLE round-trip: area/bbox
                m = coco.annToMask(ann)
                assert int(m.sum()) == ann['area'] > 0
                ys, xs = np.nonzero(m)
                assert ann['bbox'] == [float(xs.min()), float(ys.min()),
                                       float(xs.max() - xs.min() + 1),
                                       float(ys.max() - ys.min() + 1)]
        cocos[split] = coco
    lines = (out / 'captions.jsonl').read_text().splitlines()
    assert len(lines) == summary['num_images']
    return cocos


def names(coco: COCO) -> Dict[int, str]:
    return {c['id']: c['name'] for c in coco.dataset['categories']}


def count(cocos: Dict[str, COCO], normal: Optional[bool] = None) -> int:
    return sum(1 for c in cocos.values() for im in c.dataset['images']
               if normal is None or im['is_normal'] == normal)
