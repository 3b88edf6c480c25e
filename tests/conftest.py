# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Shared fixtures. ``import imdd_mm`` comes first: it applies the compat
patches that must precede ``import mmdet.models``."""
import os
from pathlib import Path

import imdd_mm  # noqa: F401  (must precede mmdet imports)
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get('IMDD_SHARED_DATA')
    if env:
        return Path(env)
    return REPO_ROOT.parent / 'shared' / 'data'


SHARED_DATA = _shared_data_dir()


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope='session')
def shared_data_root() -> Path:
    """``../shared/data`` (or ``$IMDD_SHARED_DATA``); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f'real data not found at {SHARED_DATA} '
                    '(set IMDD_SHARED_DATA or place ../shared/data)')
    return SHARED_DATA


def shared_dataset(name: str) -> Path:
    """Path of one real dataset under ``../shared/data``; skips if absent."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f'real dataset {name!r} not found at {path}')
    return path


@pytest.fixture(scope='session')
def magnetic_tile_root() -> Path:
    return shared_dataset('magnetic_tile')


@pytest.fixture(scope='session')
def neu_det_root() -> Path:
    return shared_dataset('neu_det')


@pytest.fixture(scope='session')
def elpv_root() -> Path:
    return shared_dataset('elpv')


@pytest.fixture(autouse=True)
def _mmdet_default_scope():
    """Every test starts in mmdet's default scope.

    mmengine builds from the registry of the *current* default scope, so a
    scope left behind by an earlier test (the MMSeg tests switch to
    ``mmseg``) would change what a name such as ``CLIPTextEncoder`` builds.
    """
    from mmengine.registry import DefaultScope, init_default_scope
    current = DefaultScope.get_current_instance()
    if current is None or current.scope_name != 'mmdet':
        init_default_scope('mmdet')
    yield


@pytest.fixture(autouse=True, scope='session')
def _single_torch_thread():
    """One intra-op thread for the whole suite: the tiny test models run
    several times faster single-threaded (OpenMP threads spin against the
    other processes of a busy CI machine) and results do not depend on the
    core count. Tools run as subprocesses get ``OMP_NUM_THREADS=1``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
