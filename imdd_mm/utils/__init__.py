# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from .checkpoint import (RestrictedUnpickler, UnsafeCheckpointError,
                         register_safe_checkpoint_loader, safe_torch_load)
from .compat import apply_compat_patches
from .provenance import (any_random_frozen, file_sha256,
                         restore_frozen_sources)
from .setup_env import register_all_modules, setup_cpu_distributed
from .version_check import check_versions

__all__ = [
    'RestrictedUnpickler', 'UnsafeCheckpointError',
    'register_safe_checkpoint_loader', 'safe_torch_load',
    'apply_compat_patches', 'register_all_modules', 'setup_cpu_distributed',
    'check_versions', 'any_random_frozen', 'file_sha256',
    'restore_frozen_sources'
]
