# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""YOLOv8 baseline (Table 4, §11.2), written for imdd-mm from the published
architecture description; no mmyolo / ultralytics code is used."""
from .assigner import YOLOv8TaskAlignedAssigner
from .backbone import YOLOv8CSPDarknet
from .detector import YOLOv8Detector
from .head import YOLOv8Head
from .layers import SPPF, Bottleneck, C2f
from .losses import bbox2dist, bbox_ciou, dist2bbox
from .neck import YOLOv8PAFPN

__all__ = [
    'YOLOv8CSPDarknet', 'YOLOv8PAFPN', 'YOLOv8Head', 'YOLOv8Detector',
    'YOLOv8TaskAlignedAssigner', 'C2f', 'SPPF', 'Bottleneck', 'bbox_ciou',
    'bbox2dist', 'dist2bbox'
]
