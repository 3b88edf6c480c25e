# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""A small Magnetic Tile subset (symlinks in the published layout) converted
by our converter (``data_converters/convert.py magnetic_tile``, called
in-process)."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
FOLDERS = ('MT_Blowhole', 'MT_Break', 'MT_Crack', 'MT_Fray', 'MT_Uneven',
           'MT_Free')


def shared_mt_root() -> Path:
    env = os.environ.get('IMDD_SHARED_DATA')
    base = Path(env) if env else REPO.parent / 'shared' / 'data'
    root = base / 'magnetic_tile'
    if not root.is_dir():
        pytest.skip(f'real Magnetic Tile data not found at {root}')
    return root


def link_subset(src: Path, root: Path, per_class: int = 4) -> Path:
    """Symlink the first ``per_class`` images (+ masks) of every class
    folder of Magnetic Tile ``src`` into ``root``, in the published layout.
    Returns ``root``."""
    for folder in FOLDERS:
        imgs = sorted((src / folder / 'Imgs').glob('*.jpg'))
        # skip the published empty masks' images (they carry no instance)
        picked = [p for p in imgs if p.with_suffix('.png').is_file()]
        picked = picked[:per_class]
        dst = root / folder / 'Imgs'
        dst.mkdir(parents=True, exist_ok=True)
        for p in picked:
            for f in (p, p.with_suffix('.png')):
                link = dst / f.name
                if not link.exists():
                    link.symlink_to(f)
    return root


def convert_subset(src: Path, work: Path, per_class: int = 4) -> Path:
    """Symlink ``per_class`` images (+ masks) per folder into ``work/mt``
    (:func:`link_subset`) and convert them into ``work/out``. Returns
    ``work``."""
    root = link_subset(src, work / 'mt', per_class)
    out = work / 'out'
    if not (out / 'annotations' / 'train.json').is_file():
        sys.path.insert(0, str(REPO))
        from data_converters.convert import convert
        convert('magnetic_tile', str(root), str(out), nproc=1,
                progress=False)
    return work


def use_subset(cfg, work: Path, splits=('train', 'val')) -> None:
    """Point the config's ``<split>_dataloader`` datasets at the subset
    converted by :func:`convert_subset` (``work/out`` annotations of that
    split, images under ``work/mt``)."""
    for split in splits:
        dataset = cfg[f'{split}_dataloader'].dataset
        dataset.data_root = str(work)
        dataset.ann_file = f'out/annotations/{split}.json'
        dataset.data_prefix = dict(img='mt/')
