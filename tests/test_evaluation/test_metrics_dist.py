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


@pytest.mark.slow
def test_two_ranks_equal_single_process(tmp_path):
    num = 7  # odd: DefaultSampler pads rank 1 with a copy of sample 0
    out = tmp_path / 'dist.json'
    worker = str(Path(__file__).with_name('_dist_worker.py'))
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, worker, str(out), str(num)], cwd=REPO_ROOT,
            env=tool_env(RANK=rank, LOCAL_RANK=rank, WORLD_SIZE=2,
                         MASTER_ADDR='127.0.0.1', MASTER_PORT=port),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in range(2)
    ]
    try:
        logs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-4000:]
    dist = json.loads(out.read_text())
    assert dist['world'] == 2 and dist['local'] == 4
    single = evaluate_all(build_dataset(num), num)
    assert set(dist['result']) == set(single)
    for key, value in single.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(dist['result'][key]), key
        else:
            assert dist['result'][key] == pytest.approx(value, abs=1e-12), key
