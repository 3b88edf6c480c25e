# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from . import (anomaly, backbones, dense_heads, detectors, losses, necks,  # noqa
               pretrainers, seg, text_encoders, yolov8)
