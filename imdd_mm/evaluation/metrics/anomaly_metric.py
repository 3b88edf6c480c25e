# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Anomaly localisation metrics: P-AUROC, AUPRO, I-AUROC (Table 6)."""
import logging
import math
from typing import Optional, Sequence, Tuple

import numpy as np
from mmdet.registry import METRICS
from mmengine.dist import (all_gather_object, broadcast_object_list,
                           get_dist_info, is_main_process)
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmseg.registry import METRICS as SEG_METRICS

from ..functional import StreamingPixelCurves, image_auroc
from .sample_utils import (gt_defect_mask, is_defective, is_normal,
                           sample_name, to_numpy)


@SEG_METRICS.register_module()
@METRICS.register_module()
class AnomalyMetric(BaseMetric):
    """Streaming pixel AUROC, AUPRO and image AUROC.

    Prediction: ``pred_score_map.data`` (1, H, W) defect probability and
    ``pred_image_score`` (float; the map's maximum when absent). Ground
    truth: the union of the ``gt_instances`` masks at the original size;
    an image is defective unless ``is_normal`` (or, without that key, it
    has no instance and ``image_label`` is -1 / unset).

    Pixel metrics stream: each map is folded into fixed-size histograms
    (:class:`~imdd_mm.evaluation.functional.StreamingPixelCurves`) as it
    arrives, so memory does not grow with the test set; in distributed
    runs the histograms of all ranks are summed (no maps are gathered).
    Image scores (one float per image) are gathered. Definitions follow
    MVTec AD (see :mod:`imdd_mm.evaluation.functional.ranking`): regions
    are 8-connected components of each ground-truth mask, AUPRO integrates
    PRO over FPR in ``[0, fpr_limit]`` and divides by ``fpr_limit``.

    Metrics (fractions): ``P-AUROC``, ``AUPRO``, ``I-AUROC``. Registered in
    mmdet's and mmseg's ``METRICS``; with mmseg samples (no
    ``gt_instances``) the ground truth is ``gt_sem_seg > 0`` (an ignore
    value 255 is rejected with an error).

    Scores ``+inf`` / ``-inf`` rank above / below every finite score; a NaN
    score is an error naming the image.

    Args:
        fpr_limit (float): AUPRO integration limit. Defaults to 0.3.
        num_bins (int): score bins of the streaming state.
        score_range (tuple[float, float]): range of the score maps; values
            outside are clipped (a warning reports how many).
        collect_device (str): kept for API compatibility.
        prefix (str): metric name prefix. Defaults to ``'anomaly'``.
    """
    default_prefix: Optional[str] = 'anomaly'

    def __init__(self,
                 fpr_limit: float = 0.3,
                 num_bins: int = 2**18,
                 score_range: Tuple[float, float] = (0.0, 1.0),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not 0 < fpr_limit <= 1:
            raise ValueError(f'fpr_limit must be in (0, 1], got {fpr_limit}')
        self.fpr_limit = float(fpr_limit)
        self.num_bins = int(num_bins)
        self.score_range = (float(score_range[0]), float(score_range[1]))
        self._reset_state()

    def _reset_state(self) -> None:
        self._curves = StreamingPixelCurves(self.num_bins, self.score_range)
        self._image_scores: list = []
        self._image_labels: list = []
        self._pending = None  # last sample, may be sampler padding
        self._count = 0

    def _fold(self, item) -> None:
        score, mask, image_score, label = item
        self._curves.update(score, mask)
        self._image_scores.append(image_score)
        self._image_labels.append(label)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            field = sample.get('pred_score_map')
            if field is None:
                raise KeyError(f'{sample_name(sample)}: no `pred_score_map` '
                               'in the prediction (needed by AnomalyMetric)')
            score = to_numpy(field.get('data')).astype(np.float32)
            score = score.reshape(score.shape[-2:])
            mask = gt_defect_mask(sample, score.shape)
            nan = np.isnan(score)
            if nan.any():
                y, x = (int(v) for v in np.argwhere(nan)[0])
                raise ValueError(
                    f'{sample_name(sample)}: pred_score_map has '
                    f'{int(nan.sum())} NaN values (first at y={y}, x={x}); '
                    'scores must be numbers (+inf / -inf rank highest / '
                    'lowest)')
            image_score = sample.get('pred_image_score')
            if image_score is None:
                image_score = float(score.max())
            elif hasattr(image_score, 'item'):
                image_score = float(image_score.item())
            if math.isnan(float(image_score)):
                raise ValueError(f'{sample_name(sample)}: pred_image_score '
                                 'is NaN')
            if self._pending is not None:
                self._fold(self._pending)
            defective = is_defective(sample)
            if is_normal(sample) is None:  # e.g. mmseg samples
                defective = defective or bool(mask.any())
            self._pending = (score, mask, float(image_score), defective)
            self._count += 1

    def compute_metrics(self, results: list) -> dict:
        """Unused: :meth:`evaluate` merges the streaming states."""
        raise NotImplementedError

    def local_state(self, size: int) -> dict:
        """This rank's compact state (histograms + image scores).

        ``DefaultSampler`` pads the last round so that every rank gets the
        same number of samples; the padded sample (at most one per rank, its
        last) has the global position ``(count - 1) * world_size + rank >=
        size`` and is left out, matching what ``collect_results`` drops.
        """
        rank, world_size = get_dist_info()
        if self._pending is not None:
            if (self._count - 1) * world_size + rank < size:
                self._fold(self._pending)
            self._pending = None
        return dict(curves=self._curves.state_dict(),
                    scores=list(self._image_scores),
                    labels=list(self._image_labels))

    def compute_from_states(self, states: Sequence[dict]) -> dict:
        """Sum the states of all ranks and compute the (unprefixed)
        metrics."""
        curves = StreamingPixelCurves.from_state_dict(states[0]['curves'])
        scores = list(states[0]['scores'])
        labels = list(states[0]['labels'])
        for other in states[1:]:
            curves.merge(StreamingPixelCurves.from_state_dict(
                other['curves']))
            scores += other['scores']
            labels += other['labels']
        if curves.num_clipped:
            print_log(
                f'AnomalyMetric: {curves.num_clipped} scores outside '
                f'score_range={self.score_range} were clipped; set '
                'score_range to the range of the score maps',
                logger='current', level=logging.WARNING)
        metrics = {
            'P-AUROC': curves.compute(),
            'AUPRO': curves.aupro(self.fpr_limit),
            'I-AUROC': (image_auroc(np.asarray(scores, np.float64),
                                    np.asarray(labels, bool))
                        if scores else float('nan')),
        }
        print_log(
            f'AnomalyMetric: {len(scores)} images, {curves.num_regions} '
            'defect regions; binning error bound of P-AUROC '
            f'{curves.max_error():.2e}', logger='current')
        return metrics

    def evaluate(self, size: int) -> dict:
        """Sum the streaming states of all ranks (no maps are gathered) and
        compute ``P-AUROC``, ``AUPRO`` and ``I-AUROC`` on the main
        process; the result is broadcast to every rank."""
        _, world_size = get_dist_info()
        state = self.local_state(size)
        states = all_gather_object(state) if world_size > 1 else [state]
        if is_main_process():
            metrics = self.compute_from_states(states)
            if self.prefix:
                metrics = {f'{self.prefix}/{k}': v for k, v in metrics.items()}
            out = [metrics]
        else:
            out = [None]
        broadcast_object_list(out)
        self._reset_state()
        self.results.clear()
        return out[0]
