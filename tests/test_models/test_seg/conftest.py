# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import pytest
import torch


@pytest.fixture(autouse=True)
def single_torch_thread():
    """Tiny models on a shared, oversubscribed CPU run many times faster
    with one intra-op thread (OpenMP threads spin against other processes);
    restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
