# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The tiny Stage-2 model with random weights, for tests that need a model
or a checkpoint but no training."""
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
TINY_STAGE2_CONFIG = str(REPO / 'configs/imdd/tiny/stage2_tiny.py')


def build_tiny_stage2(seed: int = 0, for_test: bool = False):
    """The tiny Stage-2 model, seeded (``for_test``: without train_cfg, in
    eval mode, as ``init_detector`` builds it)."""
    import imdd_mm
    from mmdet.registry import MODELS
    from mmengine.config import Config
    imdd_mm.register_all_modules()
    cfg = Config.fromfile(TINY_STAGE2_CONFIG)
    if for_test:
        cfg.model.train_cfg = None
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    return model.eval() if for_test else model


def save_tiny_stage2_checkpoint(path: Path, seed: int = 0) -> Path:
    """A randomly initialised tiny Stage-2 checkpoint (no meta)."""
    model = build_tiny_stage2(seed)
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path
