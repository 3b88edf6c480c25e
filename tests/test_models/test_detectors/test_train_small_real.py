# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""CI-sized smoke run of the small recipe (configs/imdd/small/stage2_small.py)
on real Magnetic Tile images converted by our converter: a few iterations
through mmengine's Runner with the feature cache on, the loss falls, the
cache is filled once and then read, and the predictions have their shapes."""
from pathlib import Path

import imdd_mm  # noqa: F401
import numpy as np
import pytest
import torch
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.runner import Runner

from ._mt_subset import convert_subset, shared_mt_root, use_subset

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.real_data
@pytest.mark.slow
def test_small_stage2_smoke_on_magnetic_tile(tmp_path, monkeypatch):
    monkeypatch.setattr(Config, 'pretty_text', property(lambda c: c.text))
    work = convert_subset(shared_mt_root(), tmp_path, per_class=3)
    register_all_modules()
    cfg = Config.fromfile(str(REPO / 'configs/imdd/small/stage2_small.py'))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.model.stage1_checkpoint = None  # Stage 1 is a benchmark, not a test
    cfg.model.feature_cache.cache_dir = str(tmp_path / 'cache')
    use_subset(cfg, work, ('train', 'test'))
    # 4 fixed images, 2 per batch: 2 cold iterations then cache reads
    cfg.train_dataloader.dataset.indices = 4
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.sampler = dict(type='DefaultSampler', shuffle=True)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=24,
                         val_interval=10**6)
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.param_scheduler = []
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader.dataset.indices = 2
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=10**6, by_epoch=False,
        save_last=False)
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0)
    runner = Runner.from_cfg(cfg)
    runner.train()

    model = runner.model
    cache = model.feature_cache
    assert cache.misses == 4 and cache.hits >= 40  # computed once each
    losses = np.array(runner.message_hub.get_scalar('train/loss').data[0])
    assert len(losses) == 24 and np.isfinite(losses).all()
    first, last = losses[:4].mean(), losses[-4:].mean()
    print(f'small Stage-2 loss: first 4 iters {first:.4f}, last 4 {last:.4f}')
    assert last < 0.8 * first, (first, last, losses.round(3).tolist())

    model.eval()
    loader = runner.build_dataloader(cfg.test_dataloader)
    data = next(iter(loader))
    with torch.no_grad():
        out = model.test_step(data)[0]
    oh, ow = out.metainfo['ori_shape'][:2]
    assert out.pred_score_map.data.shape == (1, oh, ow)
    assert out.pred_sem_seg.sem_seg.shape == (1, oh, ow)
    n = len(out.pred_instances)
    assert out.pred_instances.masks.shape == (n, oh, ow)
    assert out.pred_instances.bboxes.shape == (n, 4)
    feats = model.extract_feat(model.data_preprocessor(data)['inputs'])
    h, w = cfg.image_size
    assert [tuple(f.shape[-2:]) for f in feats] == [
        (h // s, w // s) for s in (4, 8, 16, 32)]
