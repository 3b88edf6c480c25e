# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""tools/dist_train.sh CONFIG 2 trains with two processes; without CUDA it
falls back to gloo on CPU."""
import json
import socket

import pytest
import torch

from tests.test_tools._runner import REPO_ROOT, run_tool

CONFIG = REPO_ROOT / 'tests' / 'data' / 'toy_config.py'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason='checks the CPU (gloo) fallback')
def test_dist_train_two_cpu_processes(tmp_path):
    work = tmp_path / 'dist'
    run_tool(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', work],
             PORT=_free_port())
    records = [
        json.loads((work / f'rank{r}.json').read_text()) for r in (0, 1)
    ]
    for rank, rec in enumerate(records):
        assert rec['rank'] == rank
        assert rec['iters'] == 6 and rec['final_iter'] == 6
    # DDP all-reduces gradients: both replicas end with the same weights.
    assert records[0]['weight'] == pytest.approx(records[1]['weight'],
                                                 abs=1e-6)
    assert (work / 'iter_6.pth').is_file()
