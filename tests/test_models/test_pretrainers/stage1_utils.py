# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Helpers shared by the Stage-1 tests (data, configs, tiny models)."""
from pathlib import Path

from mmengine.config import Config

from imdd_mm.datasets.image_caption import write_jsonl_atomic

REPO_ROOT = Path(__file__).resolve().parents[3]
TINY_CFG = REPO_ROOT / 'configs' / 'imdd' / 'tiny' / 'stage1_tiny.py'
FULL_CFG = REPO_ROOT / 'configs' / 'imdd' / 'stage1_imdd.py'
MT_CLASSES = ('Blowhole', 'Break', 'Crack', 'Fray', 'Uneven', 'Free')


def magnetic_tile_captions(root: Path, out: Path, per_class: int = 3,
                           limit: int = 16) -> Path:
    """Write captions.jsonl (converter fields) for the first ``per_class``
    images of each Magnetic Tile folder; captions from the folder name."""
    recs = []
    for cls in MT_CLASSES:
        imgs = sorted((root / f'MT_{cls}' / 'Imgs').glob('*.jpg'))[:per_class]
        for p in imgs:
            normal = cls == 'Free'
            caption = ('defect-free magnetic tile surface' if normal else
                       f'magnetic tile with a {cls.lower()} defect')
            recs.append(
                dict(
                    file_name=str(p.relative_to(root)),
                    image_root=str(root),
                    caption=caption,
                    nouns=[] if normal else [cls.lower()],
                    source='magnetic_tile',
                    split='train',
                    is_normal=normal))
    write_jsonl_atomic(recs[:limit], str(out))
    return out


def tiny_stage1_cfg() -> Config:
    return Config.fromfile(str(TINY_CFG))


def build_tiny_pretrainer(**overrides):
    """The tiny config's IMDDDiffusionPretrainer (random weights)."""
    from imdd_mm.utils import register_all_modules
    from mmdet.registry import MODELS
    register_all_modules()
    cfg = tiny_stage1_cfg()
    cfg.model.update(overrides)
    return MODELS.build(cfg.model)
