# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Box detection from masks: mAP@0.5, mAP@0.75 and average IoU (Table 4)."""
import json
import os
import os.path as osp
from typing import Optional, Sequence

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ..functional import (BOX_MODES, average_best_iou, build_coco_gt,
                          build_coco_results, coco_box_metrics,
                          masks_to_boxes)
from .sample_utils import (check_label_names, gt_boxes, gt_labels,
                           gt_masks, image_shape, sample_name, to_numpy)


def _atomic_json(obj, path: str) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f)
    os.replace(tmp, path)


@METRICS.register_module()
class MaskBoxDetectionMetric(BaseMetric):
    """COCO box AP of boxes derived from masks, with one box convention.

    Boxes follow ``box_mode`` (DESIGN "Box convention"; set it to the
    model's ``box_mode``): ``'mask'`` one box per mask, ``'components'``
    one per 8-connected component. Ground-truth boxes come from the
    ``gt_instances`` masks with the same convention, or from
    ``gt_instances.bboxes`` for box-only sources (``gt_box_source='auto'``
    picks masks when present, and the annotated box for an instance whose
    mask is empty). Predicted boxes come from
    ``pred_instances.masks`` (so predictions and ground truth share the
    convention) or, for box detectors such as the YOLOv8 baseline, from
    ``pred_instances.bboxes``.

    Metrics (fractions, pycocotools, definitions in
    :mod:`imdd_mm.evaluation.functional.detection`): ``mAP`` (0.50:0.95),
    ``mAP_50``, ``mAP_75`` and ``avg_iou`` (mean over ground-truth boxes of
    the best IoU with a same-class prediction scoring ``>= iou_score_thr``).

    Args:
        box_mode (str): ``'mask'`` or ``'components'``.
        gt_box_source (str): ``'auto'``, ``'masks'`` or ``'boxes'``.
        pred_box_source (str): ``'auto'``, ``'masks'`` or ``'boxes'``.
        class_agnostic (bool): evaluate all defect classes as one.
        iou_score_thr (float): score threshold of the average IoU.
        outfile_prefix (str, optional): also write the COCO files
            ``<prefix>.gt.json`` and ``<prefix>.bbox.json`` (for checking
            with pycocotools or other tools).
        collect_device (str): ``'cpu'`` or ``'gpu'``.
        prefix (str): metric name prefix. Defaults to ``'det'``.
    """
    default_prefix: Optional[str] = 'det'

    def __init__(self,
                 box_mode: str = 'mask',
                 gt_box_source: str = 'auto',
                 pred_box_source: str = 'auto',
                 class_agnostic: bool = False,
                 iou_score_thr: float = 0.3,
                 outfile_prefix: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if box_mode not in BOX_MODES:
            raise ValueError(f'box_mode must be one of {BOX_MODES}, got '
                             f'{box_mode!r}')
        for name, value in (('gt_box_source', gt_box_source),
                            ('pred_box_source', pred_box_source)):
            if value not in ('auto', 'masks', 'boxes'):
                raise ValueError(f"{name} must be 'auto', 'masks' or "
                                 f"'boxes', got {value!r}")
        self.box_mode = box_mode
        self.gt_box_source = gt_box_source
        self.pred_box_source = pred_box_source
        self.class_agnostic = class_agnostic
        self.iou_score_thr = iou_score_thr
        self.outfile_prefix = outfile_prefix

    def _gt(self, sample: dict) -> dict:
        masks = gt_masks(sample)
        labels = gt_labels(sample)
        use_masks = (self.gt_box_source == 'masks'
                     or (self.gt_box_source == 'auto' and masks is not None))
        if use_masks:
            if masks is None:
                raise KeyError(f'{sample_name(sample)}: gt_box_source='
                               "'masks' but the ground truth has no masks")
            boxes, index = masks_to_boxes(masks, self.box_mode)
            labels_out = labels[index]
            # an instance without mask pixels (e.g. a box-only annotation
            # loaded with with_mask=True) keeps its annotated box
            empty = np.setdiff1d(np.arange(len(labels)), index)
            all_boxes = gt_boxes(sample)
            if (self.gt_box_source == 'auto' and len(empty)
                    and len(all_boxes) == len(labels)):
                boxes = np.concatenate([boxes, all_boxes[empty]])
                labels_out = np.concatenate([labels_out, labels[empty]])
            return dict(bboxes=boxes, labels=labels_out)
        return dict(bboxes=gt_boxes(sample), labels=labels)

    def _pred(self, sample: dict) -> dict:
        inst = sample.get('pred_instances')
        if inst is None:
            raise KeyError(f'{sample_name(sample)}: no `pred_instances`')
        scores = to_numpy(inst.get('scores')).reshape(-1)
        labels = to_numpy(inst.get('labels')).reshape(-1).astype(np.int64)
        has_masks = 'masks' in inst and inst.get('masks') is not None
        use_masks = (self.pred_box_source == 'masks'
                     or (self.pred_box_source == 'auto' and has_masks))
        if use_masks:
            if not has_masks:
                raise KeyError(f'{sample_name(sample)}: pred_box_source='
                               "'masks' but the prediction has no masks")
            masks = to_numpy(inst.get('masks'))
            if masks.ndim != 3:
                masks = masks.reshape((-1, ) + masks.shape[-2:])
            boxes, index = masks_to_boxes(masks.astype(bool), self.box_mode)
            return dict(bboxes=boxes, scores=scores[index],
                        labels=labels[index])
        boxes = to_numpy(inst.get('bboxes')).reshape(-1, 4)
        return dict(bboxes=boxes.astype(np.float32), scores=scores,
                    labels=labels)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if not self.class_agnostic:
                check_label_names(sample, self.dataset_meta)
            self.results.append(
                dict(gt=self._gt(sample), pred=self._pred(sample),
                     shape=image_shape(sample)))

    def compute_metrics(self, results: list) -> dict:
        gts = [r['gt'] for r in results]
        preds = [r['pred'] for r in results]
        classes = (self.dataset_meta or {}).get('classes')
        if classes is not None:
            num_classes = len(classes)
        else:
            labels = [g['labels'] for g in gts] + [p['labels'] for p in preds]
            num_classes = int(max([x.max() for x in labels if len(x)] or
                                  [0])) + 1
        if self.outfile_prefix:
            os.makedirs(osp.dirname(osp.abspath(self.outfile_prefix)),
                        exist_ok=True)
            gt_dict = build_coco_gt(gts, num_classes, self.class_agnostic,
                                    [r['shape'] or (0, 0) for r in results])
            _atomic_json(gt_dict, self.outfile_prefix + '.gt.json')
            _atomic_json(build_coco_results(preds, self.class_agnostic),
                         self.outfile_prefix + '.bbox.json')
            print_log(f'COCO files written to {self.outfile_prefix}.*.json',
                      logger='current')
        out = coco_box_metrics(gts, preds, num_classes, self.class_agnostic)
        out['avg_iou'] = average_best_iou(gts, preds, self.iou_score_thr,
                                          self.class_agnostic)
        return out
