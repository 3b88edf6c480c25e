# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Pixel-level defect segmentation metrics (Tables 5, 7, 11)."""
import warnings
from typing import Optional, Sequence

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS as SEG_METRICS

from ..functional import (areas_to_metrics, binary_seg_counts,
                          binary_seg_counts_at, binary_seg_metrics,
                          intersect_and_union)
from .sample_utils import (check_label_names, gt_label_map, sample_name,
                           to_numpy)


def _label_map(field):
    """mmdet keeps label maps in ``sem_seg``, mmseg in ``data``."""
    value = field.get('sem_seg')
    return field.get('data') if value is None else value


@SEG_METRICS.register_module()
@METRICS.register_module()
class DefectSegMetric(BaseMetric):
    """Pixel accuracy, F1, IoU and Dice of defect segmentation.

    Counts are pooled over all pixels of all images (definitions in
    :mod:`imdd_mm.evaluation.functional.segmentation`; identical to
    MMSegmentation's ``IoUMetric`` on the same label maps).

    Prediction: ``pred_sem_seg.sem_seg`` (1, H, W), 0 = normal, ``k + 1`` =
    class ``k`` (``pred_source='sem_seg'``), or ``pred_score_map.data >=
    score_thr`` as a binary defect map (``pred_source='score_map'``, for
    anomaly baselines; then only the binary metrics are reported).
    Ground truth: the ``gt_instances`` masks at the original size (later
    instances win where they overlap), or the ``gt_sem_seg`` label map
    (mmdet's ``sem_seg`` / mmseg's ``data`` field; 255 = ignore).
    ``gt_source='auto'`` uses ``gt_sem_seg`` when the sample has one.
    Registered in mmdet's and mmseg's ``METRICS``: with mmseg's
    ``IMDDCocoSegDataset`` (background is ``classes[0]``) set
    ``background_in_classes=True``.

    Metrics (fractions): binary defect-vs-normal ``acc, precision, recall,
    f1, iou, dice`` (the paper's Table 5 columns) and, with ``sem_seg``
    predictions, multi-class ``aAcc, mIoU, mAcc, mDice, mFscore`` over the
    background and every class (NaN classes skipped, as in mmseg), plus
    ``IoU_<class>`` when ``per_class=True``.

    Threshold sweep (``thr_sweep``, a list of thresholds): the binary
    ``iou@<t>`` and ``f1@<t>`` of ``pred_score_map.data >= t`` for every
    ``t``, and ``best_iou_thr`` / ``best_iou`` (the threshold of the
    highest IoU on *this* split, the lowest on ties, and that IoU). Run on
    a validation split it chooses the threshold to set as the model's
    ``test_cfg.sem_seg_thr`` for the test split; on the test split itself
    it is an oracle, a diagnostic only. For models whose defect map is
    ``score_map >= test_cfg.sem_seg_thr`` (IMDDMask2Former,
    SupervisedUNet) ``iou@<sem_seg_thr>`` equals ``iou``.

    Args:
        num_classes (int, optional): defect classes; defaults to
            ``len(dataset_meta['classes'])``.
        pred_source (str): ``'sem_seg'`` or ``'score_map'``.
        score_thr (float): threshold of ``pred_source='score_map'``.
        gt_source (str): ``'auto'``, ``'instances'`` or ``'sem_seg'``.
        background_in_classes (bool): ``dataset_meta['classes']`` already
            names label 0 (mmseg datasets); else label 0 is added.
        ignore_index (int): ignored ground-truth value.
        per_class (bool): also report per-class IoU.
        thr_sweep (Sequence[float], optional): thresholds of the sweep
            over ``pred_score_map`` (above); None: no sweep.
        collect_device (str): ``'cpu'`` or ``'gpu'``.
        prefix (str): metric name prefix. Defaults to ``'seg'``.
    """
    default_prefix: Optional[str] = 'seg'

    def __init__(self,
                 num_classes: Optional[int] = None,
                 pred_source: str = 'sem_seg',
                 score_thr: float = 0.5,
                 gt_source: str = 'auto',
                 background_in_classes: bool = False,
                 ignore_index: int = 255,
                 per_class: bool = False,
                 thr_sweep: Optional[Sequence[float]] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if pred_source not in ('sem_seg', 'score_map'):
            raise ValueError("pred_source must be 'sem_seg' or 'score_map', "
                             f'got {pred_source!r}')
        if gt_source not in ('auto', 'instances', 'sem_seg'):
            raise ValueError("gt_source must be 'auto', 'instances' or "
                             f"'sem_seg', got {gt_source!r}")
        self.background_in_classes = background_in_classes
        self.num_classes = num_classes
        self.pred_source = pred_source
        self.score_thr = score_thr
        self.gt_source = gt_source
        self.ignore_index = ignore_index
        self.per_class = per_class
        self.thr_sweep = None
        if thr_sweep is not None:
            thrs = [float(t) for t in thr_sweep]
            if not thrs or len(set(thrs)) != len(thrs):
                raise ValueError('thr_sweep must be a non-empty list of '
                                 f'distinct thresholds, got {thr_sweep!r}')
            self.thr_sweep = thrs

    def _num_labels(self) -> int:
        if self.num_classes is not None:
            return int(self.num_classes) + 1  # + normal background
        classes = (self.dataset_meta or {}).get('classes')
        if classes is None:
            raise ValueError('DefectSegMetric needs num_classes or a '
                             "dataset_meta with 'classes'")
        return len(classes) + (0 if self.background_in_classes else 1)

    def _pred_map(self, sample: dict) -> np.ndarray:
        if self.pred_source == 'sem_seg':
            field = sample.get('pred_sem_seg')
            if field is None:
                raise KeyError(f'{sample_name(sample)}: no `pred_sem_seg` '
                               'in the prediction')
            pred = to_numpy(_label_map(field))
            return pred.reshape(pred.shape[-2:]).astype(np.int64)
        field = sample.get('pred_score_map')
        if field is None:
            raise KeyError(f'{sample_name(sample)}: no `pred_score_map` in '
                           'the prediction')
        score = to_numpy(field.get('data'))
        return (score.reshape(score.shape[-2:]) >= self.score_thr).astype(
            np.int64)

    def _gt_map(self, sample: dict, shape) -> np.ndarray:
        field = sample.get('gt_sem_seg')
        if self.gt_source == 'instances' or (self.gt_source == 'auto'
                                             and field is None):
            return gt_label_map(sample, shape)
        if field is None:
            raise KeyError(f'{sample_name(sample)}: no `gt_sem_seg`')
        gt = to_numpy(_label_map(field))
        gt = gt.reshape(gt.shape[-2:]).astype(np.int64)
        if gt.shape != tuple(shape):
            raise ValueError(f'{sample_name(sample)}: gt_sem_seg is '
                             f'{gt.shape}, prediction {tuple(shape)}')
        return gt

    def _sweep_counts(self, sample: dict, gt: np.ndarray,
                      ignore: np.ndarray) -> np.ndarray:
        field = sample.get('pred_score_map')
        if field is None:
            raise KeyError(f'{sample_name(sample)}: thr_sweep needs '
                           '`pred_score_map` in the prediction')
        score = to_numpy(field.get('data'))
        score = score.reshape(score.shape[-2:])
        if score.shape != gt.shape:
            raise ValueError(f'{sample_name(sample)}: pred_score_map is '
                             f'{score.shape}, ground truth {gt.shape}')
        return binary_seg_counts_at(score, gt > 0, self.thr_sweep,
                                    ignore=ignore)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        num_labels = self._num_labels()
        for sample in data_samples:
            if self.pred_source == 'sem_seg' and \
                    not self.background_in_classes:
                check_label_names(sample, self.dataset_meta)
            pred = self._pred_map(sample)
            gt = self._gt_map(sample, pred.shape)
            ignore = gt == self.ignore_index
            counts = binary_seg_counts(pred > 0, (gt > 0) & ~ignore,
                                       ignore=ignore)
            if self.pred_source == 'sem_seg':
                areas = np.stack(
                    intersect_and_union(pred, gt, num_labels,
                                        self.ignore_index))
            else:
                areas = None
            sweep = (self._sweep_counts(sample, gt, ignore)
                     if self.thr_sweep is not None else None)
            self.results.append((counts, areas, sweep))

    def compute_metrics(self, results: list) -> dict:
        counts = np.zeros(4, np.int64)
        for c, *_ in results:
            counts += c
        out = dict(binary_seg_metrics(counts))
        if self.pred_source == 'sem_seg' and results:
            totals = np.sum([r[1] for r in results], axis=0)
            per = areas_to_metrics(*totals)
            with warnings.catch_warnings():  # all-NaN means stay NaN
                warnings.simplefilter('ignore', RuntimeWarning)
                out.update(
                    aAcc=float(per['aAcc']),
                    mIoU=float(np.nanmean(per['IoU'])),
                    mAcc=float(np.nanmean(per['Acc'])),
                    mDice=float(np.nanmean(per['Dice'])),
                    mFscore=float(np.nanmean(per['Fscore'])))
            if self.per_class:
                classes = list((self.dataset_meta or {}).get('classes') or
                               range(len(per['IoU']) - 1))
                names = ([] if self.background_in_classes else ['normal']
                         ) + [str(c) for c in classes]
                for name, iou in zip(names, per['IoU']):
                    out[f'IoU_{name}'] = float(iou)
        if self.thr_sweep is not None and results:
            sweep = np.sum([r[2] for r in results], axis=0)
            best_thr, best_iou = None, -1.0
            for t, c in zip(self.thr_sweep, sweep):
                m = binary_seg_metrics(c)
                out[f'iou@{t:g}'] = m['iou']
                out[f'f1@{t:g}'] = m['f1']
                if m['iou'] > best_iou or (m['iou'] == best_iou
                                           and t < best_thr):
                    best_thr, best_iou = t, m['iou']
            out['best_iou_thr'] = best_thr
            out['best_iou'] = best_iou
        return out
