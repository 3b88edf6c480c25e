# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""imdd-mm: open-vocabulary industrial defect understanding (IMDD-1M) as an
OpenMMLab plugin.

Importing this package checks the OpenMMLab version window, applies the
compatibility work-arounds (they must precede ``import mmdet.models``) and
registers every imdd-mm component into mmdet's (and mmseg's) registries.
"""
from .utils.compat import apply_compat_patches

apply_compat_patches()

from .utils.version_check import check_versions  # noqa: E402

check_versions()

from .utils.checkpoint import register_safe_checkpoint_loader  # noqa: E402

register_safe_checkpoint_loader()

from . import (datasets, engine, evaluation, generation,  # noqa: E402,F401
               models, visualization, vocab)
from .utils.setup_env import register_all_modules  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = ['__version__', 'register_all_modules']
