# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Reading, listing and tiling of user images for inference.

The rules every inference entry point follows (``DefectInferencer``,
``tools/infer.py``, ``tools/web_demo.py``): any image cv2 decodes is
accepted (grayscale, 16-bit, float, gray+alpha, RGBA are converted to
8-bit BGR by :func:`imdd_mm.visualization.overlay.to_rgb_uint8`); tiny
images are upsampled by the config's resize; large ones run as overlapping
tiles (:func:`tile_windows`).
"""
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import cv2
import numpy as np

from imdd_mm.visualization.overlay import to_rgb_uint8

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def list_images(inputs: Union[str, Path],
                exclude: Optional[Path] = None) -> Tuple[Path, List[Path]]:
    """The input root and its image files (recursive, sorted), without the
    files under ``exclude`` (the output folder, so that a rerun does not
    read its own overlays).

    Args:
        inputs (str | Path): An image file or a folder.
        exclude (Path, optional): A folder whose files are skipped.

    Returns:
        tuple: ``(root, files)``; a single file gives its parent as root.
    """
    path = Path(inputs)
    if path.is_file():
        return path.parent, [path]
    if not path.is_dir():
        raise FileNotFoundError(f'{inputs}: no such file or folder')
    skip = exclude.resolve() if exclude is not None else None
    files = sorted(
        p for p in path.rglob('*')
        if p.suffix.lower() in IMAGE_EXTS and p.is_file() and not (
            skip is not None and skip in p.resolve().parents))
    return path, files


def output_stems(root: Path, files: List[Path]) -> Dict[Path, Path]:
    """Output stem (relative, without suffix) of each input; ``a.png`` and
    ``a.jpg`` in one folder become ``a_png`` and ``a_jpg``."""
    stems = [p.relative_to(root).with_suffix('') for p in files]
    clash = {s for s in stems if stems.count(s) > 1}
    return {
        p: (s.with_name(f'{s.name}_{p.suffix.lstrip(".").lower()}')
            if s in clash else s)
        for p, s in zip(files, stems)
    }


def to_bgr_uint8(image: np.ndarray) -> np.ndarray:
    """Any decoded image (cv2 channel order) as (H, W, 3) uint8 BGR, the
    pipeline's convention.

    Args:
        image (np.ndarray): (H, W), (H, W, 1|2|3|4); uint8, uint16 or
            float; colour channels in BGR(A) order as cv2 decodes them.

    Returns:
        np.ndarray: (H, W, 3) uint8 BGR, contiguous.
    """
    image = np.asarray(image)
    if image.size == 0:
        raise ValueError(f'empty image array of shape {image.shape}')
    return np.ascontiguousarray(to_rgb_uint8(image)[..., ::-1])


def read_image(path: Union[str, Path]) -> np.ndarray:
    """Decode any supported image to (H, W, 3) uint8 BGR; raises
    ``ValueError`` naming the file when unreadable (``OSError`` when it
    cannot be opened)."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(f'{path}: not a readable image (empty, truncated '
                         'or an unsupported format)')
    return to_bgr_uint8(image)


def tile_windows(height: int, width: int, tile: int,
                 overlap: float) -> List[Tuple[int, int, int, int]]:
    """Windows ``(x0, y0, x1, y1)`` covering the image; neighbours overlap
    by at least ``overlap * tile`` pixels. An image no larger than ``tile``
    is one window."""
    if tile < 1:
        raise ValueError(f'tile size must be >= 1, got {tile}')
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f'tile overlap must be in [0, 1), got {overlap}')
    if max(height, width) <= tile:
        return [(0, 0, width, height)]
    step = max(1, int(tile * (1 - overlap)))

    def starts(size):
        if size <= tile:
            return [0]
        pos = list(range(0, size - tile, step)) + [size - tile]
        return sorted(set(pos))

    return [(x, y, min(x + tile, width), min(y + tile, height))
            for y in starts(height) for x in starts(width)]


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so
    that an interrupted run leaves no partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_bytes(data)
    os.replace(tmp, path)
