# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Fail early, with the exact fix, when the OpenMMLab stack is outside the
version window imdd-mm is tested with."""
from importlib import metadata

from packaging.version import Version

#: package name -> (minimum inclusive, maximum exclusive, pip requirement)
TESTED_VERSIONS = {
    'mmcv': ('2.0.0rc4', '2.2.0', 'mmcv==2.1.0'),
    'mmengine': ('0.10.0', '0.11.0', 'mmengine==0.10.7'),
    'mmdet': ('3.3.0', '3.4.0', 'mmdet==3.3.0'),
    'mmsegmentation': ('1.2.0', '1.3.0', 'mmsegmentation==1.2.2'),
}

INSTALL_HINT = {
    'mmcv': ('MMCV_WITH_OPS=1 pip install --no-build-isolation mmcv==2.1.0 '
             '(or run `make install`, which also patches its C++ standard '
             'for torch>=2.10)'),
}


def _installed_version(dist: str):
    try:
        return Version(metadata.version(dist))
    except metadata.PackageNotFoundError:
        return None


def check_versions() -> None:
    """Raise ``ImportError`` naming the package and the install command when
    an OpenMMLab dependency is missing or outside its tested window."""
    problems = []
    for dist, (low, high, requirement) in TESTED_VERSIONS.items():
        found = _installed_version(dist)
        hint = INSTALL_HINT.get(dist, f'pip install "{requirement}"')
        if found is None:
            problems.append(f'{dist} is not installed; install it with: '
                            f'{hint}')
        elif not Version(low) <= found < Version(high):
            problems.append(
                f'{dist}=={found} is outside the tested window '
                f'[{low}, {high}); install it with: {hint}')
    if problems:
        raise ImportError('imdd_mm: ' + '; '.join(problems) +
                          '. `make install` sets up the whole tested stack '
                          'in .venv.')
