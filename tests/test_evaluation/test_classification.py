# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import math

import pytest

from imdd_mm.evaluation.functional import (classification_accuracy,
                                           classification_metrics)


def test_classification_toy():
    preds = [0, 1, -1, 2, 0]
    targets = [0, 2, -1, [1, 2], []]  # [] = normal
    out = classification_metrics(preds, targets)
    # correct: 0, normal, 2 in {1, 2} -> 3 / 5
    assert out['accuracy'] == pytest.approx(3 / 5)
    # binary (defect vs normal): last one is wrong -> 4 / 5
    assert out['binary_accuracy'] == pytest.approx(4 / 5)
    # per class: 0 -> 1/1, 2 -> 1/2 (images 1, 3), -1 -> 1/2, 1 -> 1/1
    assert out['per_class'] == {-1: 0.5, 0: 1.0, 1: 1.0, 2: 0.5}
    assert out['mean_class_accuracy'] == pytest.approx(0.75)
    assert classification_accuracy([1, 1], [1, 0]) == 0.5
    assert math.isnan(classification_accuracy([], []))
    with pytest.raises(ValueError, match='targets'):
        classification_accuracy([1], [1, 2])
