# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Registered mmengine metrics (mmdet ``METRICS``), thin wrappers over
:mod:`imdd_mm.evaluation.functional`."""
from .anomaly_metric import AnomalyMetric
from .box_metric import MaskBoxDetectionMetric
from .classification_metric import IMDDClassificationMetric
from .seg_metric import DefectSegMetric

__all__ = [
    'AnomalyMetric', 'MaskBoxDetectionMetric', 'IMDDClassificationMetric',
    'DefectSegMetric'
]
