# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from . import stage1  # noqa: F401
from .exposure import NormalizeExposure  # noqa: F401
from .yolo import LetterResize, YOLOv8MixUp, YOLOv8RandomAffine  # noqa: F401,E501
from .formatting import (IMDD_META_KEYS, LoadIMDDSemSegAnnotations,
                         PackIMDDInputs)

__all__ = ['IMDD_META_KEYS', 'PackIMDDInputs', 'LoadIMDDSemSegAnnotations',
           'NormalizeExposure']
