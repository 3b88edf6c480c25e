# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Fixtures for the Stage-1 tests: real Magnetic Tile images with template
captions (captions.jsonl in the converters' format) and one tiny Stage-1
run through mmengine's Runner shared by the module's tests."""
import imdd_mm  # noqa: F401,I001

import pytest

from .stage1_utils import magnetic_tile_captions, tiny_stage1_cfg


@pytest.fixture(scope='module')
def mt_captions(tmp_path_factory, magnetic_tile_root):
    """captions.jsonl of 16 real Magnetic Tile images (all 6 folders)."""
    out = tmp_path_factory.mktemp('mt_captions')
    return magnetic_tile_captions(magnetic_tile_root, out / 'captions.jsonl',
                                  per_class=3, limit=16)


@pytest.fixture
def stage1_cfg():
    return tiny_stage1_cfg()
