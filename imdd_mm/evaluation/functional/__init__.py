# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Metrics on numpy arrays, used by the registered metrics and by scripts.

Anomaly maps: ``scores`` and ``masks`` (N, H, W), image ``labels`` (N,).
"""
from .classification import classification_accuracy, classification_metrics
from .detection import (BOX_MODES, average_best_iou, box_iou,
                        build_coco_gt, build_coco_results, coco_box_metrics,
                        masks_to_boxes)
from .ranking import (StreamingAUROC, StreamingPixelCurves, aupro,
                      aupro_exact, auroc_exact, image_auroc, label_regions,
                      partial_curve_area, pixel_auroc)
from .segmentation import (areas_to_metrics, binary_seg_counts,
                           binary_seg_counts_at, binary_seg_metrics,
                           intersect_and_union, seg_metrics)

__all__ = [
    'classification_accuracy', 'classification_metrics', 'BOX_MODES',
    'average_best_iou', 'box_iou', 'build_coco_gt', 'build_coco_results',
    'coco_box_metrics', 'masks_to_boxes', 'StreamingAUROC',
    'StreamingPixelCurves', 'aupro', 'aupro_exact', 'auroc_exact',
    'image_auroc', 'label_regions', 'partial_curve_area', 'pixel_auroc',
    'areas_to_metrics', 'binary_seg_counts', 'binary_seg_counts_at',
    'binary_seg_metrics',
    'intersect_and_union', 'seg_metrics'
]
