# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""All metrics in a real 2-process (gloo) evaluation equal one process."""
import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_evaluation.test_metrics import build_dataset, evaluate_all
from tests.test_tools._runner import REPO_ROOT, tool_env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_two_ranks_equal_single_process(tmp_path):
    num = 7  # odd: DefaultSampler pads rank 1 with a copy of sample 0
    out = tmp_path / 'dist.json'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           '--master_addr=127.0.0.1', f'--master_port={_free_port()}',
           str(Path(__file__).with_name('_dist_worker.py')),
           str(out), str(num)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=tool_env(), timeout=120,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    dist = json.loads(out.read_text())
    assert dist['world'] == 2 and dist['local'] == 4
    single = evaluate_all(build_dataset(num), num)
    assert set(dist['result']) == set(single)
    for key, value in single.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(dist['result'][key]), key
        else:
            assert dist['result'][key] == pytest.approx(value, abs=1e-12), key
