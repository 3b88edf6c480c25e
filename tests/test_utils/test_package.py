# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from importlib import metadata

import pytest

import imdd_mm
from imdd_mm.utils import version_check


def test_import_applies_mmpretrain_workaround():
    import mmpretrain.utils.dependency as dependency
    assert dependency.WITH_MULTIMODAL is False
    import mmdet.models  # noqa: F401  (dies in mmpretrain's BLIP otherwise)


def test_register_all_modules_sets_mmdet_scope():
    from mmengine import DefaultScope
    imdd_mm.register_all_modules()
    assert DefaultScope.get_current_instance().scope_name == 'mmdet'


def test_version_gate_names_package_and_command(monkeypatch):
    real = metadata.version

    def fake(dist):
        return '3.0.0' if dist == 'mmdet' else real(dist)

    monkeypatch.setattr(version_check.metadata, 'version', fake)
    with pytest.raises(ImportError) as err:
        version_check.check_versions()
    assert 'mmdet==3.0.0' in str(err.value)
    assert 'pip install "mmdet==3.3.0"' in str(err.value)


def test_version_gate_missing_mmcv(monkeypatch):
    real = metadata.version

    def fake(dist):
        if dist == 'mmcv':
            raise metadata.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(version_check.metadata, 'version', fake)
    with pytest.raises(ImportError, match='MMCV_WITH_OPS=1'):
        version_check.check_versions()
