# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import pytest
import torch


@pytest.fixture(autouse=True, scope='module')
def _single_thread():
    """Tiny models run fastest single-threaded on shared CPU cores (OpenMP
    threads spin against other processes); restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
