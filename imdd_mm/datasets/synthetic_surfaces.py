# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Procedurally generated industrial surfaces with defects: the embedded
default dataset of ``make demo``.

Nothing is downloaded: every image is drawn from a seeded generator, so the
same seed gives byte-identical files. Four surfaces (brushed metal, woven
fabric, concrete, PCB traces) carry one defect class each image (scratch,
crack, stain, hole, ...) with its pixel mask; defect-free ("good") images are
included as in real inspection data. The dataset is written in the generic
folder-per-class layout that ``data_converters/convert.py folder`` reads::

    out/
      images/{train,val,test}/{good,scratch,crack,stain,hole}/<surface>_<n>.png
      masks/{train,val,test}/{scratch,crack,stain,hole}/<surface>_<n>.png
      dataset.yaml            # the converter config (source, classes, ...)

Example:
    >>> from imdd_mm.datasets.synthetic_surfaces import write_surface_dataset
    >>> write_surface_dataset('data/imdd_demo_src', num_per_class=dict(
    ...     train=16, val=4, test=6), size=128, seed=0)

Defect positions are uniform over the image (drawn on a torus and shifted by
a uniform offset, :func:`place_uniformly`), so no position prior helps.
"""
import json
import os
import re
import zlib
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

SURFACES = ('brushed_metal', 'woven_fabric', 'concrete', 'pcb')
DEFECTS = ('scratch', 'crack', 'stain', 'hole')
NORMAL = 'good'


def _smooth_noise(rng: np.random.Generator, size: int, scale: int,
                  ksize: Tuple[int, int]) -> np.ndarray:
    """Gaussian-blurred white noise, zero mean, unit-ish std, (size, size)."""
    small = max(2, size // scale)
    noise = rng.standard_normal((small, small)).astype(np.float32)
    noise = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    if ksize != (0, 0):
        noise = cv2.GaussianBlur(noise, ksize, 0)
    return noise / (noise.std() + 1e-6)


def _brushed_metal(rng, size):
    streaks = rng.standard_normal((size, size)).astype(np.float32)
    streaks = cv2.GaussianBlur(streaks, (0, 0), sigmaX=size / 6, sigmaY=0.6)
    streaks /= streaks.std() + 1e-6
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    light = 0.5 + 0.25 * np.sin(2.5 * xx + 1.5 * yy + rng.uniform(0, 6))
    gray = 150 + 45 * light + 10 * streaks
    img = np.stack([gray * 0.98, gray, gray * 1.03], -1)
    return np.clip(img, 0, 255)


def _woven_fabric(rng, size):
    period = rng.uniform(5.0, 8.0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    warp = np.sin(2 * np.pi * xx / period)
    weft = np.sin(2 * np.pi * yy / period)
    weave = np.where((np.floor(xx / period) + np.floor(yy / period)) % 2 == 0,
                     warp, weft)
    base = np.array(rng.choice([[70, 90, 160], [150, 60, 60], [60, 130, 90]]),
                    np.float32)
    shade = 1.0 + 0.18 * weave + 0.05 * _smooth_noise(rng, size, 8, (3, 3))
    return np.clip(base[None, None] * shade[..., None], 0, 255)


def _concrete(rng, size):
    tex = (0.6 * _smooth_noise(rng, size, 16, (5, 5)) +
           0.4 * _smooth_noise(rng, size, 3, (0, 0)))
    gray = 135 + 18 * tex
    pores = rng.random((size, size)) < 0.004
    pores = cv2.dilate(pores.astype(np.uint8), np.ones((2, 2), np.uint8))
    gray = np.where(pores > 0, gray - 45, gray)
    img = np.stack([gray, gray * 0.98, gray * 0.95], -1)
    return np.clip(img, 0, 255)


def _pcb(rng, size):
    img = np.empty((size, size, 3), np.float32)
    img[:] = (50, 110, 40)  # BGR green solder mask
    img += 6 * _smooth_noise(rng, size, 8, (3, 3))[..., None]
    for _ in range(int(rng.integers(6, 11))):
        x, y = (int(v) for v in rng.integers(4, size - 4, 2))
        width = int(rng.integers(2, 4))
        for _seg in range(3):
            if rng.random() < 0.5:
                nx, ny = int(rng.integers(4, size - 4)), y
            else:
                nx, ny = x, int(rng.integers(4, size - 4))
            cv2.line(img, (x, y), (nx, ny), (70, 160, 200), width)  # BGR gold
            x, y = nx, ny
        cv2.circle(img, (x, y), width + 2, (90, 180, 215), -1)
    return np.clip(img, 0, 255)


SURFACE_FUNCS: Dict[str, Callable] = {
    'brushed_metal': _brushed_metal,
    'woven_fabric': _woven_fabric,
    'concrete': _concrete,
    'pcb': _pcb,
}


# Defects are drawn around the centre ``c = size`` of a (2·size)² canvas and
# then wrapped onto the image as onto a torus at a uniformly random offset
# (:func:`place_uniformly`): every pixel is equally likely to be defective, so
# a centre-distance score map is at chance (issue: no centre bias).


def _scratch(rng, size):
    mask = np.zeros((2 * size, 2 * size), np.uint8)
    length = rng.uniform(0.35, 0.8) * size
    angle = rng.uniform(0, np.pi)
    dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
    p0 = (int(size - dx), int(size - dy))
    p1 = (int(size + dx), int(size + dy))
    cv2.line(mask, p0, p1, 1, int(rng.integers(1, 3)))
    return mask, +1.0  # bright: exposed metal


def _crack(rng, size):
    mask = np.zeros((2 * size, 2 * size), np.uint8)
    x = y = float(size)
    heading = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.integers(18, 32))):
        heading += rng.normal(0, 0.45)
        nx = np.clip(x + 3 * np.cos(heading), 0, 2 * size - 1)
        ny = np.clip(y + 3 * np.sin(heading), 0, 2 * size - 1)
        cv2.line(mask, (int(x), int(y)), (int(nx), int(ny)), 1, 2)
        if rng.random() < 0.08:  # a short branch
            bh = heading + rng.choice([-1, 1]) * rng.uniform(0.6, 1.2)
            bx, by = nx + 8 * np.cos(bh), ny + 8 * np.sin(bh)
            cv2.line(mask, (int(nx), int(ny)), (int(bx), int(by)), 1, 1)
        x, y = nx, ny
    return mask, -1.0  # dark


def _stain(rng, size):
    yy, xx = np.mgrid[0:2 * size, 0:2 * size].astype(np.float32)
    rx, ry = rng.uniform(0.08, 0.18, 2) * size
    wobble = np.tile(0.25 * _smooth_noise(rng, size, 12, (5, 5)), (2, 2))
    # no wobble at the centre: the stain is never empty, even when small
    wobble -= wobble[size, size]
    field = ((xx - size) / rx)**2 + ((yy - size) / ry)**2 + wobble
    # only the connected blob around the centre (the tiled wobble may open
    # far-away islands, which would wrap onto the image)
    blob = (field < 1.0).astype(np.uint8)
    _, labels = cv2.connectedComponents(blob)
    return (labels == labels[size, size]).astype(np.uint8), -0.6


def _hole(rng, size):
    mask = np.zeros((2 * size, 2 * size), np.uint8)
    radius = int(rng.uniform(0.03, 0.07) * size) + 2
    cv2.circle(mask, (size, size), radius, 1, -1)
    return mask, -1.6  # very dark, deep


def place_uniformly(canvas: np.ndarray, size: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Wrap a (2·size)² defect canvas drawn around its centre onto a
    (size, size) torus and shift it by a uniform random offset.

    Returns:
        np.ndarray: (size, size) uint8 mask in {0, 1}.
    """
    folded = canvas.reshape(2, size, 2, size).max(axis=(0, 2))
    dy, dx = (int(v) for v in rng.integers(0, size, 2))
    return np.roll(folded, (dy, dx), axis=(0, 1))


DEFECT_FUNCS: Dict[str, Callable] = {
    'scratch': _scratch,
    'crack': _crack,
    'stain': _stain,
    'hole': _hole,
}


def render_sample(surface: str, defect: Optional[str], size: int,
                  seed: int) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Draw one image.

    Args:
        surface (str): One of :data:`SURFACES`.
        defect (str, optional): One of :data:`DEFECTS`, or None for a
            defect-free image.
        size (int): Image side in pixels.
        seed (int): Seed of this image's generator.

    Returns:
        tuple: ``image`` (size, size, 3) uint8 BGR and ``mask``
        (size, size) uint8 in {0, 255}, or None for a defect-free image.
    """
    rng = np.random.default_rng(seed)
    img = SURFACE_FUNCS[surface](rng, size).astype(np.float32)
    mask = None
    if defect is not None:
        canvas, contrast = DEFECT_FUNCS[defect](rng, size)
        region = place_uniformly(canvas, size, rng)
        soft = cv2.GaussianBlur(region.astype(np.float32), (3, 3), 0)
        if defect == 'stain':
            tint = np.array([20, 50, 90], np.float32)  # brownish
            img = img * (1 - 0.55 * soft[..., None]) + \
                tint * 0.55 * soft[..., None]
        else:
            img = img + 70 * contrast * soft[..., None]
        mask = (region > 0).astype(np.uint8) * 255
    img += rng.normal(0, 2.0, img.shape)  # sensor noise
    return np.clip(img, 0, 255).astype(np.uint8), mask


def image_seed(seed: int, split: str, cls: str, index: int) -> int:
    """The seed of one image: a function of the base seed, the split name,
    the class name and the index only (not of which other splits or
    classes are written)."""
    entropy = [int(seed) & 0xFFFFFFFF, zlib.crc32(split.encode()),
               zlib.crc32(cls.encode()), int(index)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode('.png', array)
    if not ok:
        raise RuntimeError(f'could not encode {path}')
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)


def _remove_stale(out: Path, written: set) -> None:
    """Delete images/masks of an earlier, larger run into ``out`` (only
    files named as this module names them), so that a rerun into the same
    folder holds exactly what this run wrote."""
    pattern = re.compile(r'^(%s)_\d{4,}\.png$' % '|'.join(SURFACE_FUNCS))
    for sub in ('images', 'masks'):
        for path in sorted((out / sub).rglob('*.png')):
            if pattern.match(path.name) and path not in written:
                path.unlink()


def write_surface_dataset(out_dir, num_per_class: Dict[str, int],
                          size: int = 128, seed: int = 0,
                          defects: Sequence[str] = DEFECTS,
                          surfaces: Sequence[str] = SURFACES) -> Path:
    """Write the procedural dataset in the folder-per-class layout.

    Args:
        out_dir (str | Path): Destination (created).
        num_per_class (dict): Images per class (defect classes and
            ``good``) for each split, e.g. ``dict(train=16, val=4, test=6)``.
        size (int): Image side. Defaults to 128.
        seed (int): Base seed; each image's seed derives from it, its split,
            class and index, so the output does not depend on call order.
        defects (Sequence[str]): Defect classes to draw.
        surfaces (Sequence[str]): Surfaces, cycled over the images.

    Images and masks of an earlier run into ``out_dir`` that this run does
    not write (e.g. with larger counts) are removed, so the folder holds
    exactly this run's dataset.

    Returns:
        Path: The path of the converter config ``dataset.yaml``.
    """
    out = Path(out_dir)
    unknown = sorted(set(defects) - set(DEFECT_FUNCS)) + sorted(
        set(surfaces) - set(SURFACE_FUNCS))
    if unknown or not defects or not surfaces:
        raise ValueError(f'unknown or missing defects/surfaces {unknown}; '
                         f'known defects {DEFECTS}, surfaces {SURFACES}')
    if size < 16:
        raise ValueError(f'size must be >= 16 pixels, got {size}')
    bad = {k: v for k, v in num_per_class.items()
           if not isinstance(v, int) or v < 0}
    if bad:
        raise ValueError(f'num_per_class needs counts >= 0, got {bad}')
    classes = [NORMAL] + list(defects)
    written = set()
    for split, count in sorted(num_per_class.items()):
        for cls in classes:
            for i in range(count):
                surface = surfaces[i % len(surfaces)]
                img_seed = image_seed(seed, split, cls, i)
                defect = None if cls == NORMAL else cls
                img, mask = render_sample(surface, defect, size, img_seed)
                name = f'{surface}_{i:04d}.png'
                _write_png(out / 'images' / split / cls / name, img)
                written.add(out / 'images' / split / cls / name)
                if mask is not None:
                    _write_png(out / 'masks' / split / cls / name, mask)
                    written.add(out / 'masks' / split / cls / name)
    _remove_stale(out, written)
    config = dict(
        source='imdd_demo_surfaces',
        license='Apache-2.0 (generated by imdd_mm)',
        reference='imdd_mm.datasets.synthetic_surfaces',
        product='industrial surface',
        material='mixed materials',
        domain='surface inspection',
        image_dir='images',
        mask_dir='masks',
        mask_suffix='.png',
        normal_classes=[NORMAL],
        classes=list(defects),
    )
    cfg_path = out / 'dataset.yaml'
    tmp = cfg_path.with_name('dataset.yaml.tmp')
    # JSON is valid YAML; it keeps the file free of a yaml dependency.
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + '\n')
    os.replace(tmp, cfg_path)
    return cfg_path
