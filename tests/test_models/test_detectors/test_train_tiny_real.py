# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The tiny Stage-2 config trains on real Magnetic Tile images converted by
our converter, through mmengine's Runner (VocabularyHook, IMDDCocoDataset,
PackIMDDInputs), and its loss goes down; then it tests with CocoMetric."""
from pathlib import Path

import imdd_mm  # noqa: F401
import numpy as np
import pytest
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.runner import Runner

from ._mt_subset import convert_subset, shared_mt_root, use_subset

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.real_data
@pytest.mark.slow
def test_tiny_stage2_trains_on_magnetic_tile(tmp_path, monkeypatch):
    # yapf-formatting the config for the log/dump costs tens of seconds on a
    # loaded CPU and is not under test
    monkeypatch.setattr(Config, 'pretty_text', property(lambda c: c.text))
    work = convert_subset(shared_mt_root(), tmp_path, per_class=6)
    register_all_modules()
    cfg = Config.fromfile(str(REPO / 'configs/imdd/tiny/stage2_tiny.py'))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.data_root = str(work) + '/'
    use_subset(cfg, work, ('train', 'val'))
    # a fixed small subset: the loss must go down on it
    cfg.train_dataloader.dataset.indices = 8
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.sampler = dict(type='DefaultSampler', shuffle=True)
    cfg.train_cfg.max_iters = 40
    cfg.val_evaluator[0].ann_file = str(work / 'out/annotations/val.json')
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = cfg.val_evaluator
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=10**6, by_epoch=False,
        save_last=False)
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0)
    runner = Runner.from_cfg(cfg)
    runner.train()

    model = runner.model
    assert model.vocabulary == ('blowhole', 'break', 'crack', 'fray',
                                'uneven')
    losses = np.array(runner.message_hub.get_scalar('train/loss').data[0])
    assert len(losses) == 40 and np.isfinite(losses).all()
    first, last = losses[:8].mean(), losses[-8:].mean()
    print(f'tiny Stage-2 loss: first 8 iters {first:.4f}, last 8 {last:.4f}')
    assert last < 0.85 * first, (first, last, losses.round(3).tolist())

    metrics = runner.test()
    assert 'coco/segm_mAP' in metrics and 'coco/bbox_mAP' in metrics
