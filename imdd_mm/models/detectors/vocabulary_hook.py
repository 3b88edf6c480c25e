# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Hook that gives an open-vocabulary model the category names of the
datasets it trains and is evaluated on.

mmengine's runner hands ``dataset_meta`` to the evaluator and visualizer but
not to the model, so without this hook a model whose config sets no
``vocabulary`` would not know its classes. Models opt in by having a
``dataset_meta`` attribute (training vocabulary) and an
``eval_dataset_vocabulary`` attribute (evaluation vocabulary).
"""
from typing import List, Sequence, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmdet.registry import HOOKS


def normalise_name(name: str) -> str:
    """Category name for matching: lower case, ``_`` read as a space,
    whitespace collapsed (``'Rolled-in_Scale'`` -> ``'rolled-in scale'``)."""
    return ' '.join(str(name).replace('_', ' ').lower().split())


def vocabulary_label_map(vocabulary: Sequence[str],
                         classes: Sequence[str]
                         ) -> Tuple[List[int], Tuple[str, ...], List[str]]:
    """Map vocabulary indices to dataset category indices by name.

    The predictions' label space is the dataset's classes (indices
    ``0..K-1``) followed by the vocabulary names that are no dataset class
    (indices ``K, K+1, ...``, vocabulary order), so a label never points at
    a dataset category of another name.

    Args:
        vocabulary (Sequence[str]): Names the model classifies against.
        classes (Sequence[str]): The evaluated dataset's classes.

    Returns:
        tuple: ``lut`` (list[int], vocabulary index -> label), the label
        names (dataset classes + extra names) and the extra names.
    """
    index = {}
    for i, name in enumerate(classes):
        index.setdefault(normalise_name(name), i)
    lut, extra = [], []
    for name in vocabulary:
        key = normalise_name(name)
        if key in index:
            lut.append(index[key])
        else:
            lut.append(len(classes) + len(extra))
            extra.append(str(name))
    return lut, tuple(str(c) for c in classes) + tuple(extra), extra


def _unwrap(model):
    return model.module if hasattr(model, 'module') else model


def _classes(dataloader):
    dataset = getattr(dataloader, 'dataset', None)
    meta = getattr(dataset, 'metainfo', None) or {}
    classes = meta.get('classes')
    return (tuple(classes) if classes else None), meta


def _scores_by_name(metric) -> bool:
    """imdd-mm's metrics read labels in the mapped label space (a name
    outside the dataset never matches a category); others index the
    dataset's category list."""
    return type(metric).__module__.startswith('imdd_mm.')


@HOOKS.register_module()
class VocabularyHook(Hook):
    """Set the model's vocabulary from the train/val/test datasets.

    - before training: ``model.dataset_meta = train_dataset.metainfo`` (the
      model keeps a vocabulary given in its config);
    - before validation / testing: ``model.eval_dataset_vocabulary`` is the
      evaluated dataset's classes (a ``test_vocabulary`` in the model config
      still takes precedence; the model then maps its predictions to the
      dataset's categories by name, see :func:`vocabulary_label_map`).
      When the vocabulary in use has names that are no category of the
      dataset, metrics that score labels by index into the dataset's
      categories (mmdet's ``CocoMetric`` and any metric from outside
      imdd-mm) cannot be computed: they are removed from that loop's
      evaluator with a logged reason. imdd-mm's metrics stay: a label of a
      name outside the dataset never matches a ground-truth category.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        model = _unwrap(runner.model)
        classes, meta = _classes(runner.train_dataloader)
        if classes and hasattr(model, 'dataset_meta'):
            model.dataset_meta = dict(meta)

    def _set_eval(self, runner, loop_name: str) -> None:
        model = _unwrap(runner.model)
        loop = getattr(runner, loop_name, None)
        dataloader = getattr(loop, 'dataloader', None)
        classes, meta = _classes(dataloader)
        if classes and hasattr(model, 'eval_dataset_vocabulary'):
            model.eval_dataset_vocabulary = classes
            if getattr(model, 'dataset_meta', None) is None and \
                    hasattr(model, 'dataset_meta'):
                model.dataset_meta = dict(meta)
            vocabulary = getattr(model, 'test_vocabulary', None)
            if vocabulary:
                self._check_metrics(getattr(loop, 'evaluator', None),
                                    tuple(vocabulary), classes, loop_name)

    @staticmethod
    def _check_metrics(evaluator, vocabulary: Tuple[str, ...],
                       classes: Tuple[str, ...], loop_name: str) -> None:
        """Log the name mapping and drop the metrics that would score the
        predictions by index although names are missing from the dataset."""
        _, _, extra = vocabulary_label_map(vocabulary, classes)
        absent = [c for c in classes if normalise_name(c) not in
                  {normalise_name(v) for v in vocabulary}]
        print_log(
            f'{loop_name}: test vocabulary {list(vocabulary)} mapped to the '
            f'dataset categories by name; names not in the dataset: '
            f'{extra}; dataset classes not in the vocabulary: {absent}',
            logger='current')
        metrics = getattr(evaluator, 'metrics', None)
        if not extra or metrics is None:
            return
        kept = []
        for metric in metrics:
            if _scores_by_name(metric):
                kept.append(metric)
                continue
            print_log(
                f'{loop_name}: {type(metric).__name__} skipped: the test '
                f'vocabulary has names that are no category of the '
                f'evaluated dataset ({extra}) and '
                f'{type(metric).__name__} scores labels by index into the '
                "dataset's categories",
                logger='current', level=30)
        metrics[:] = kept

    def before_val(self, runner) -> None:
        self._set_eval(runner, 'val_loop')

    def before_test(self, runner) -> None:
        self._set_eval(runner, 'test_loop')
