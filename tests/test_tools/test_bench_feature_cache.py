# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""benchmarks/bench_feature_cache.py at CI size (tiny config, 2 images):
both sides run, the breakdown attributes the iteration, and the SD-1.5
U-Net option sets the paper's architecture."""
import importlib.util

import pytest
from mmengine.config import Config

from tests.test_tools._runner import REPO_ROOT


def load_bench():
    path = REPO_ROOT / 'benchmarks' / 'bench_feature_cache.py'
    spec = importlib.util.spec_from_file_location('bench_feature_cache',
                                                  path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_with_breakdown(capsys):
    bench = load_bench()
    res = bench.main([
        '--config', str(REPO_ROOT / 'configs/imdd/tiny/stage2_tiny.py'),
        '--images', '2', '--batch', '2', '--size', '64', '--repeats', '1',
        '--timer', 'cpu', '--breakdown'])
    out = capsys.readouterr().out
    assert 'speed-up recompute / warm' in out and 'load average' in out
    assert res['recompute'] > 0 and res['warm'] > 0
    assert res['ratio'] == pytest.approx(res['recompute'] / res['warm'])
    warm_rows, warm_total = res['stages']['cache warm']
    rec_rows, rec_total = res['stages']['recompute']
    warm = dict(warm_rows)
    rec = dict(rec_rows)
    # the warm side reads the cache and never runs the frozen path; the
    # recompute side runs it and never touches the cache
    assert 'cache: read' in warm and 'frozen path: VAE + U-Net' not in warm
    assert rec['frozen path: VAE + U-Net'] > 0 and 'cache: read' not in rec
    for rows, total in ((warm_rows, warm_total), (rec_rows, rec_total)):
        assert sum(ms for _, ms in rows) == pytest.approx(total)
        assert dict(rows)['head forward'] > 0 and dict(rows)['backward'] > 0


def test_sd15_option_sets_the_paper_unet():
    bench = load_bench()
    cfg = Config.fromfile(
        str(REPO_ROOT / 'configs/imdd/small/stage2_small.py'))
    cfg.merge_from_dict(bench.frozen_unet_options('sd15'))
    unet = cfg.model.backbone.unet.config
    assert tuple(unet.block_out_channels) == (320, 640, 1280, 1280)
    assert unet.layers_per_block == 2 and unet.cross_attention_dim == 768
    assert cfg.model.captioner.out_dim == 768
    assert cfg.model.stage1_checkpoint is None
    assert bench.frozen_unet_options(None) == {}
    with pytest.raises(ValueError, match='frozen-unet'):
        bench.frozen_unet_options('sdxl')
