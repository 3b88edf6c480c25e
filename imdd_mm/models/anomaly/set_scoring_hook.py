# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Hook giving set-scoring models (MuSc-style :class:`MutualScoring`) the
whole evaluated dataset before the first test / val batch is predicted."""
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmdet.registry import HOOKS


@HOOKS.register_module()
class SetScoringHook(Hook):
    """Before each test (and val) epoch, calls
    ``model.score_set(dataloader)`` with the loop's dataloader, so the model
    scores the full split as one set; ``predict`` then looks the results up.

    One extra pass over the dataloader (images are loaded twice; the
    network runs once per image).
    """

    priority = 'VERY_HIGH'

    def _score(self, runner, dataloader) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if not hasattr(model, 'score_set'):
            raise TypeError(f'SetScoringHook: {type(model).__name__} has no '
                            'score_set()')
        print_log(f'{type(model).__name__}: scoring the whole split '
                  f'({len(dataloader.dataset)} images) as one set',
                  logger='current')
        model.score_set(dataloader)

    def before_test_epoch(self, runner) -> None:
        self._score(runner, runner.test_dataloader)

    def before_val_epoch(self, runner) -> None:
        self._score(runner, runner.val_dataloader)
