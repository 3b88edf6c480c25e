# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Offline analysis of dumped predictions (``tools/test.py --out x.pkl``).

mmdet's ``DumpDetResults`` drops the ground truth from what it dumps, so
the analysis tools (``confusion_matrix.py``, ``analyze_results.py``) pair
each dumped prediction with its ground truth from the config's test dataset,
built and loaded exactly as the evaluator sees it (same classes, label order
and test pipeline), and read both through :mod:`..metrics.sample_utils`,
the helpers the metrics use.
"""
from typing import Iterator, List, Tuple

import numpy as np
from mmengine.config import Config

from .metrics.sample_utils import (get_field, gt_defect_mask,
                                   gt_image_labels, sample_name, to_numpy)

__all__ = [
    'load_results', 'build_test_dataset', 'paired_samples',
    'image_class_pair', 'defect_iou', 'pred_defect_mask'
]


def load_results(path: str) -> List[dict]:
    """The list of prediction dicts of a ``--out`` pickle."""
    import mmengine
    results = mmengine.load(path)
    if not isinstance(results, list) or not results or not all(
            isinstance(r, dict) for r in results):
        raise ValueError(f'{path}: expected a non-empty list of prediction '
                         'dicts, as `tools/test.py --out x.pkl` writes')
    missing = [i for i, r in enumerate(results) if 'img_path' not in r]
    if missing:
        raise ValueError(f'{path}: predictions {missing[:5]} have no '
                         '`img_path` to match them with the dataset')
    return results


def build_test_dataset(cfg: Config):
    """The config's test dataset, as ``tools/test.py`` builds it."""
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return DATASETS.build(cfg.test_dataloader.dataset)


def paired_samples(dataset, results: List[dict]
                   ) -> Iterator[Tuple[dict, object]]:
    """Yield ``(prediction dict, ground-truth DetDataSample)`` pairs.

    Args:
        dataset: the test dataset (:func:`build_test_dataset`).
        results: the dumped predictions (:func:`load_results`).

    Raises:
        KeyError: a prediction whose image is not in the test dataset
            (the pickle was written with another config or data).
    """
    index = {}
    for i in range(len(dataset)):
        index[dataset.get_data_info(i)['img_path']] = i
    for res in results:
        idx = index.get(res['img_path'])
        if idx is None:
            raise KeyError(f'{res["img_path"]}: not in the test dataset of '
                           'this config; was the pickle written with it?')
        yield res, dataset[idx]['data_samples']


def image_class_pair(pred: dict, gt) -> Tuple[int, int]:
    """(true, predicted) image class, -1 = normal. The true class of an
    image with several defect classes is the one covering most pixels."""
    label = get_field(pred, 'pred_image_label')
    if label is None:
        raise KeyError(f'{sample_name(pred)}: no pred_image_label')
    true = max(gt_image_labels(gt, policy='largest'))
    return int(true), int(label)


def pred_defect_mask(pred: dict) -> np.ndarray:
    """(H, W) bool: pixels predicted as any defect class."""
    sem = get_field(pred, 'pred_sem_seg')
    if sem is None:
        raise KeyError(f'{sample_name(pred)}: no pred_sem_seg')
    seg = to_numpy(sem.get('sem_seg'))
    return seg.reshape(seg.shape[-2:]) > 0


def defect_iou(pred: dict, gt) -> float:
    """IoU of the predicted and true defect pixels of one image; 1.0 when
    both are empty (a normal image predicted normal)."""
    p = pred_defect_mask(pred)
    g = gt_defect_mask(gt, p.shape)
    union = np.logical_or(p, g).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(p, g).sum() / union)
