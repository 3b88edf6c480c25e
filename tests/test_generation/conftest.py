# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import imdd_mm  # noqa: F401,I001

import pytest
import torch


@pytest.fixture(autouse=True, scope='module')
def _single_thread():
    """Tiny models run fastest single-threaded on shared CPU cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='session')
def inception_weights(tmp_path_factory):
    """A torchvision inception_v3 state dict with random (but well-scaled)
    weights, saved to a local file: the metrics load it like real ones."""
    from .inception_utils import save_random_inception
    path = tmp_path_factory.mktemp('inception') / 'inception_rand.pth'
    save_random_inception(path)
    return path
