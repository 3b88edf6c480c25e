# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Image-level classification metrics (Table 3 of the IMDD-1M paper).

Labels are class indices with ``-1`` = normal (defect-free) image
(DESIGN "Samples"). A ground truth may list several defect classes (an
image with instances of several classes); a prediction then counts as
correct when it equals any of them.

* accuracy = #images whose prediction is correct / #images
* mean class accuracy = mean over ground-truth classes (normal included
  when present) of the accuracy on the images of that class; an image with
  several classes counts for each of them
* binary accuracy = accuracy of "defective (label >= 0) vs normal (-1)"
"""
from typing import Dict, Sequence, Union

import numpy as np

__all__ = ['classification_accuracy', 'classification_metrics']

Target = Union[int, Sequence[int]]


def _as_set(target: Target) -> frozenset:
    if isinstance(target, (int, np.integer)):
        return frozenset([int(target)])
    values = frozenset(int(t) for t in target)
    return values if values else frozenset([-1])


def classification_accuracy(preds: Sequence[int],
                            targets: Sequence[Target]) -> float:
    """Fraction of images whose predicted label is (one of) the true
    label(s); NaN for an empty input."""
    return classification_metrics(preds, targets)['accuracy']


def classification_metrics(preds: Sequence[int],
                           targets: Sequence[Target]) -> Dict[str, object]:
    """Accuracy, mean class accuracy, binary accuracy and per-class accuracy.

    Args:
        preds (Sequence[int]): (N,) predicted labels (-1 = normal).
        targets (Sequence[int | Sequence[int]]): (N,) true label, or the
            set of true labels, of each image (-1 / empty = normal).

    Returns:
        dict: ``accuracy``, ``mean_class_accuracy``, ``binary_accuracy``
        (floats, NaN when undefined) and ``per_class`` (dict label ->
        accuracy).
    """
    preds = [int(p) for p in preds]
    targets = [_as_set(t) for t in targets]
    if len(preds) != len(targets):
        raise ValueError(f'{len(preds)} predictions but {len(targets)} '
                         'targets')
    if not preds:
        nan = float('nan')
        return dict(accuracy=nan, mean_class_accuracy=nan,
                    binary_accuracy=nan, per_class={})
    correct = np.array([p in t for p, t in zip(preds, targets)])
    binary = np.array([(p >= 0) == (max(t) >= 0)
                       for p, t in zip(preds, targets)])
    per_class_hits: Dict[int, list] = {}
    for ok, t in zip(correct, targets):
        for c in t:
            per_class_hits.setdefault(c, []).append(ok)
    per_class = {c: float(np.mean(v)) for c, v in sorted(
        per_class_hits.items())}
    return dict(accuracy=float(correct.mean()),
                mean_class_accuracy=float(np.mean(list(per_class.values()))),
                binary_accuracy=float(binary.mean()),
                per_class=per_class)
