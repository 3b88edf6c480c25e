# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Trivial, model-free score maps scored by the project's own metrics.

A model's P-AUROC / IoU means little unless it beats what no model at all
scores on the same split. Two references:

* ``'centre'``: ``1 - d / d_max``, ``d`` the distance of a pixel to the
  image centre (a pure position prior: high where defects are often drawn);
* ``'constant'``: 0.5 everywhere (every threshold-free metric at chance;
  the thresholded maps mark every pixel defective).

:func:`evaluate_prior_maps` runs them through the test dataloader's dataset
and the ``DefectSegMetric`` / ``AnomalyMetric`` of a config, so their numbers
are computed exactly as the model's are.
"""
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.structures import PixelData

PRIOR_KINDS = ('centre', 'constant')
PRIOR_NAMES = {'centre': 'Centre-prior map (no model)',
               'constant': 'Constant map (no model)'}


def prior_score_map(kind: str, height: int, width: int) -> np.ndarray:
    """A (height, width) float32 map in [0, 1]."""
    if kind == 'constant':
        return np.full((height, width), 0.5, np.float32)
    if kind == 'centre':
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        cy, cx = (height - 1) / 2, (width - 1) / 2
        d = np.hypot(yy - cy, xx - cx)
        return (1.0 - d / max(float(d.max()), 1e-6)).astype(np.float32)
    raise ValueError(f'unknown prior map {kind!r}; expected one of '
                     f'{PRIOR_KINDS}')


def evaluate_prior_maps(cfg,
                        kinds: Sequence[str] = PRIOR_KINDS,
                        sem_seg_thr: Optional[float] = None,
                        max_images: Optional[int] = None
                        ) -> Dict[str, Dict[str, float]]:
    """Score the prior maps on a config's test split.

    Args:
        cfg (mmengine.Config): A Stage-2 config (``test_dataloader``,
            ``test_evaluator``, ``model.test_cfg.sem_seg_thr``).
        kinds (Sequence[str]): Which maps (:data:`PRIOR_KINDS`).
        sem_seg_thr (float, optional): Threshold of the binary defect map;
            defaults to the model's ``test_cfg.sem_seg_thr`` (0.5).
        max_images (int, optional): Only the first images.

    Returns:
        dict: kind -> the metrics dict of the config's ``DefectSegMetric``
        and ``AnomalyMetric`` (same keys as ``tools/test.py`` writes).
    """
    from mmdet.registry import DATASETS, METRICS
    from mmengine.evaluator import Evaluator
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if sem_seg_thr is None:
        sem_seg_thr = float(cfg.model.get('test_cfg', {}).get(
            'sem_seg_thr', 0.5))
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    evaluators = cfg.test_evaluator
    if isinstance(evaluators, dict):
        evaluators = [evaluators]
    wanted = [dict(m) for m in evaluators
              if m.get('type') in ('DefectSegMetric', 'AnomalyMetric')]
    if not wanted:
        raise ValueError('the config evaluates no DefectSegMetric or '
                         'AnomalyMetric: nothing to score the prior maps by')
    n = len(dataset)
    if max_images is not None:
        n = min(n, max_images)
    results = {}
    for kind in kinds:
        evaluator = Evaluator([METRICS.build(m) for m in wanted])
        evaluator.dataset_meta = dataset.metainfo
        for i in range(n):
            sample = dataset[i]['data_samples']
            h, w = sample.metainfo['ori_shape'][:2]
            score = torch.from_numpy(prior_score_map(kind, h, w))
            sample.pred_score_map = PixelData(data=score[None])
            sample.pred_sem_seg = PixelData(
                sem_seg=(score >= sem_seg_thr).long()[None])
            sample.set_field(float(score.max()), 'pred_image_score',
                             field_type='data')
            evaluator.process(data_samples=[sample], data_batch=None)
        results[kind] = evaluator.evaluate(n)
    return results
