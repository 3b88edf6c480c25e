# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""tools/train.py: a run stopped at a checkpoint and resumed with
``--resume`` continues exactly where it stopped (iteration, optimizer and
scheduler state), under torch's weights_only checkpoint default."""
import json

import torch

from imdd_mm.utils import safe_torch_load
from tests.test_tools._runner import REPO_ROOT, run_tool

CONFIG = REPO_ROOT / 'tests' / 'data' / 'toy_config.py'


def _weights(ckpt):
    return safe_torch_load(str(ckpt), map_location='cpu')['state_dict']


def test_resume_continues_from_saved_iteration(tmp_path):
    full = tmp_path / 'full'
    run_tool(['tools/train.py', CONFIG, '--work-dir', full])
    assert (full / 'iter_3.pth').is_file() and (full / 'iter_6.pth').is_file()

    # The checkpoint holds what mmengine writes (message hub with
    # HistoryBuffers, numpy seeds, optimizer and scheduler state) and
    # loads through the safe loader.
    ckpt = safe_torch_load(str(full / 'iter_3.pth'), map_location='cpu')
    assert ckpt['meta']['iter'] == 3
    assert ckpt['optimizer']['state'], 'optimizer state was not saved'
    assert 'param_schedulers' in ckpt

    # "Stop" after iteration 3, then resume from that checkpoint.
    resumed = tmp_path / 'resumed'
    proc = run_tool([
        'tools/train.py', CONFIG, '--work-dir', resumed, '--resume',
        full / 'iter_3.pth'
    ])
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 0, iter: 3' in log, log[-3000:]
    record = json.loads((resumed / 'rank0.json').read_text())
    assert record['iters'] == 3 and record['final_iter'] == 6

    # Same data order, optimizer moments and LR schedule -> same weights as
    # the uninterrupted run; a lost optimizer or scheduler state would not
    # reproduce them.
    a, b = _weights(full / 'iter_6.pth'), _weights(resumed / 'iter_6.pth')
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    after = safe_torch_load(str(resumed / 'iter_6.pth'), map_location='cpu')
    before = safe_torch_load(str(full / 'iter_6.pth'), map_location='cpu')
    assert after['param_schedulers'] == before['param_schedulers']


def test_auto_resume_and_load_from(tmp_path):
    work = tmp_path / 'auto'
    run_tool([
        'tools/train.py', CONFIG, '--work-dir', work, '--cfg-options',
        'train_cfg.max_iters=3'
    ])
    # --resume without a path finds the latest checkpoint in the work dir.
    proc = run_tool(['tools/train.py', CONFIG, '--work-dir', work, '--resume'])
    assert 'resumed epoch: 0, iter: 3' in proc.stdout + proc.stderr
    # load_from (weights only, no resume) goes through the same loader.
    proc = run_tool([
        'tools/train.py', CONFIG, '--work-dir', tmp_path / 'load', '--cfg-options',
        f'load_from={work / "iter_6.pth"}', 'train_cfg.max_iters=1'
    ])
    assert 'Load checkpoint from' in proc.stdout + proc.stderr
