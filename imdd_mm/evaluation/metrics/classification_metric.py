# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Image-level defect classification accuracy (Table 3)."""
from typing import Optional, Sequence

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric

from ..functional import classification_metrics
from .sample_utils import check_label_names, gt_image_labels, sample_name


@METRICS.register_module()
class IMDDClassificationMetric(BaseMetric):
    """Accuracy of the open-vocabulary image label.

    Prediction: the sample's ``pred_image_label`` (int, -1 = normal).
    Ground truth: ``is_normal`` -> -1, else metainfo ``image_label`` when set
    (classification-only sources), else the classes of ``gt_instances``
    (see :func:`sample_utils.gt_image_labels` for ``multi_label``).

    Metrics (fractions in [0, 1]; definitions in
    :mod:`imdd_mm.evaluation.functional.classification`): ``accuracy``,
    ``mean_class_accuracy``, ``binary_accuracy`` (defective vs normal),
    ``defect_class_accuracy`` (the mean of the defect classes' accuracies,
    defect-free images left out; NaN without defective images) and
    ``accuracy_<class>`` per class (``accuracy_normal``: defect-free).

    Args:
        multi_label (str): for images with instances of several classes:
            ``'any'`` (correct if the prediction is one of them) or
            ``'largest'`` (the class covering most pixels).
        collect_device (str): ``'cpu'`` or ``'gpu'``.
        prefix (str): metric name prefix. Defaults to ``'cls'``.
    """
    default_prefix: Optional[str] = 'cls'

    def __init__(self,
                 multi_label: str = 'any',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if multi_label not in ('any', 'largest'):
            raise ValueError("multi_label must be 'any' or 'largest', got "
                             f'{multi_label!r}')
        self.multi_label = multi_label

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            check_label_names(sample, self.dataset_meta)
            pred = sample.get('pred_image_label')
            if pred is None:
                raise KeyError(
                    f'{sample_name(sample)}: prediction has no '
                    '`pred_image_label`; the model must set it (DESIGN '
                    '"Samples") for IMDDClassificationMetric')
            if hasattr(pred, 'item'):
                pred = pred.item()
            target = sorted(gt_image_labels(sample, self.multi_label))
            self.results.append((int(pred), target))

    def compute_metrics(self, results: list) -> dict:
        preds = [p for p, _ in results]
        targets = [t for _, t in results]
        out = classification_metrics(preds, targets)
        metrics = dict(accuracy=out['accuracy'],
                       mean_class_accuracy=out['mean_class_accuracy'],
                       binary_accuracy=out['binary_accuracy'])
        # per-class accuracy (images of that class named correctly), keyed
        # by the dataset's class names; -1 = defect-free images
        names = list((self.dataset_meta or {}).get('classes') or [])
        defect = [acc for label, acc in out['per_class'].items()
                  if label >= 0]
        metrics['defect_class_accuracy'] = (float(np.mean(defect)) if defect
                                            else float('nan'))
        for label, acc in out['per_class'].items():
            name = 'normal' if label < 0 else (
                names[label] if label < len(names) else str(label))
            metrics[f'accuracy_{name}'] = acc
        return metrics
