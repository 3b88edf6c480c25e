# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import imdd_mm  # noqa: F401,I001

import pytest


@pytest.fixture(scope='session')
def inception_weights(tmp_path_factory):
    """A torchvision inception_v3 state dict with random (but well-scaled)
    weights, saved to a local file: the metrics load it like real ones."""
    from .inception_utils import save_random_inception
    path = tmp_path_factory.mktemp('inception') / 'inception_rand.pth'
    save_random_inception(path)
    return path
