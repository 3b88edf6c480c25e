# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Hook that gives an open-vocabulary model the category names of the
datasets it trains and is evaluated on.

mmengine's runner hands ``dataset_meta`` to the evaluator and visualizer but
not to the model, so without this hook a model whose config sets no
``vocabulary`` would not know its classes. Models opt in by having a
``dataset_meta`` attribute (training vocabulary) and an
``eval_dataset_vocabulary`` attribute (evaluation vocabulary).
"""
from mmengine.hooks import Hook
from mmdet.registry import HOOKS


def _unwrap(model):
    return model.module if hasattr(model, 'module') else model


def _classes(dataloader):
    dataset = getattr(dataloader, 'dataset', None)
    meta = getattr(dataset, 'metainfo', None) or {}
    classes = meta.get('classes')
    return (tuple(classes) if classes else None), meta


@HOOKS.register_module()
class VocabularyHook(Hook):
    """Set the model's vocabulary from the train/val/test datasets.

    - before training: ``model.dataset_meta = train_dataset.metainfo`` (the
      model keeps a vocabulary given in its config);
    - before validation / testing: ``model.eval_dataset_vocabulary`` is the
      evaluated dataset's classes (a ``test_vocabulary`` in the model config
      still takes precedence).
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

    def before_val(self, runner) -> None:
        self._set_eval(runner, 'val_loop')

    def before_test(self, runner) -> None:
        self._set_eval(runner, 'test_loop')
