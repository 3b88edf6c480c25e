# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Small helpers shared by the source converters (layout walking, masks,
label maps, per-object taxonomy)."""
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from data_converters.base import (IMAGE_EXTS, ConversionError, Instance,
                                  probe_image, read_image, read_mask)


def rel_posix(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` with POSIX separators."""
    return Path(path).relative_to(root).as_posix()


def list_images(folder: Path, recursive: bool = False,
                exclude_suffixes: Sequence[str] = ()) -> List[Path]:
    """Image files of a folder (sorted; hidden files and names ending with
    one of ``exclude_suffixes`` - e.g. ``'_mask'`` stems - left out)."""
    if not folder.is_dir():
        return []
    it = folder.rglob('*') if recursive else folder.iterdir()
    out = []
    for p in it:
        if not p.is_file() or p.name.startswith('.') or \
                p.suffix.lower() not in IMAGE_EXTS:
            continue
        if any(p.stem.endswith(s) for s in exclude_suffixes):
            continue
        out.append(p)
    return sorted(out)


def subdirs(folder: Path) -> List[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_dir() and not p.name.startswith('.'))


def find_by_stem(folder: Path, stem: str,
                 exts: Sequence[str] = IMAGE_EXTS) -> Optional[Path]:
    """``folder/<stem><ext>`` for the first existing extension (either
    case), or None."""
    for ext in exts:
        for e in (ext, ext.upper()):
            p = folder / f'{stem}{e}'
            if p.is_file():
                return p
    return None


def image_size(path: Path) -> Tuple[int, int]:
    """(height, width) of a fully validated image (:func:`probe_image`)."""
    return probe_image(path)


def mask_instances(mask_path: Path, category: str, hw: Tuple[int, int],
                   empty: str = 'error') -> List[Instance]:
    """One instance from a binary mask file (``> 127``).

    Args:
        empty: ``'error'`` (ConversionError naming the mask) or
            ``'normal'`` (no instance; caller decides the image label).
    """
    m = read_mask(mask_path, hw)
    if not m.any():
        if empty == 'error':
            raise ConversionError(mask_path, 'empty mask')
        return []
    return [Instance(category, mask=m, source_path=str(mask_path))]


def label_map_instances(mask_path: Path, category: str,
                        hw: Tuple[int, int]) -> List[Instance]:
    """Instances from a label-map mask: one per distinct non-zero value
    (in increasing value order). Colour label maps count each colour once.

    Raises:
        ConversionError: unreadable mask, size mismatch or no foreground.
    """
    m = read_image(mask_path, cv2.IMREAD_UNCHANGED)
    if tuple(m.shape[:2]) != tuple(hw):
        raise ConversionError(
            mask_path, f'mask size {m.shape[1]}x{m.shape[0]} (WxH) differs '
            f'from image size {hw[1]}x{hw[0]}')
    if m.ndim == 3:  # colour label map -> one id per colour
        flat = m.reshape(-1, m.shape[2]).astype(np.int64)
        key = np.zeros(flat.shape[0], np.int64)
        for c in range(flat.shape[1]):
            key = key * 65536 + flat[:, c]
        m = key.reshape(m.shape[:2])
    values = [int(v) for v in np.unique(m) if v != 0]
    if not values:
        raise ConversionError(mask_path, 'empty mask')
    return [
        Instance(category, mask=(m == v), source_path=str(mask_path),
                 attributes={'mask_value': v} if len(values) > 1 else {})
        for v in values
    ]


def object_product(source: str, obj: str) -> Dict[str, Optional[str]]:
    """Product/material of one object of a multi-object source (MVTec AD,
    VisA, ...) from the taxonomy's ``products`` table, for captions of its
    normal images."""
    from imdd_mm.vocab import map_category
    meta = map_category(source, f'{obj}/')
    return {'product': meta.get('product'), 'material': meta.get('material')}


def polygon_mask(points: Sequence[Sequence[float]],
                 hw: Tuple[int, int]) -> np.ndarray:
    """Rasterise a polygon ``[[x, y], ...]`` into a bool mask (H, W)."""
    m = np.zeros(hw, np.uint8)
    pts = np.round(np.asarray(points, np.float64)).astype(np.int32)
    cv2.fillPoly(m, [pts.reshape(-1, 1, 2)], 1)
    return m.astype(bool)


def points_bbox(points: Sequence[Sequence[float]]) -> List[float]:
    """``[x, y, w, h]`` of a point set."""
    a = np.asarray(points, np.float64).reshape(-1, 2)
    x0, y0 = a.min(axis=0)
    x1, y1 = a.max(axis=0)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def read_json(path: Path, what: str = 'JSON file'):
    """Parse a UTF-8 JSON file (a byte-order mark is accepted).

    Raises:
        ConversionError: missing, unreadable or invalid JSON, naming
            ``path`` and ``what`` it should be.
    """
    import json
    try:
        with open(path, encoding='utf-8-sig') as f:
            return json.load(f)
    except FileNotFoundError:
        raise ConversionError(path, f'{what} not found') from None
    except (OSError, ValueError) as e:
        raise ConversionError(path, f'cannot read {what} ({e})') from None
