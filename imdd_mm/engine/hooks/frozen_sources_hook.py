# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Self-describing checkpoints: the frozen networks' provenance travels
with every checkpoint, and a checkpoint is never loaded into a model whose
frozen networks differ from the ones it was trained with."""
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from imdd_mm.utils.provenance import (FROZEN_SOURCES_KEY, RANDOM_FROZEN_KEY,
                                      any_random_frozen,
                                      check_frozen_sources)


def _frozen_sources(runner):
    model = runner.model.module if is_model_wrapper(runner.model) else \
        runner.model
    get = getattr(model, 'frozen_sources', None)
    return (get() if callable(get) else None), model


@HOOKS.register_module()
class FrozenSourcesHook(Hook):
    """Write ``model.frozen_sources()`` into checkpoints and results, check
    them when a checkpoint is loaded.

    - ``before_save_checkpoint``: ``meta['imdd_frozen_sources']`` (the
      records of :mod:`imdd_mm.utils.provenance`) and
      ``meta['imdd_random_frozen']`` (True when any frozen network is
      random).
    - ``after_load_checkpoint`` (``load_from``, ``--resume``): a checkpoint
      whose recorded sources differ from the model's is an error unless the
      model was built with ``override_frozen_sources=True``. Build-time
      restoring of a Stage-2 checkpoint's Stage-1 checkpoint is done by
      :func:`imdd_mm.utils.provenance.restore_frozen_sources` (tools/test.py,
      tools/infer.py, tools/train.py).
    - ``after_test_epoch`` / ``after_val_epoch``: ``frozen_sources`` is
      added to the run's results JSON (read by
      ``tools/analysis_tools/benchmark_table.py`` for its footnotes).

    Models without ``frozen_sources()`` are left alone. It is in
    ``configs/_base_/default_runtime.py``'s ``default_hooks``.
    """

    priority = 'ABOVE_NORMAL'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        sources, _ = _frozen_sources(runner)
        if sources is None:
            return
        meta = checkpoint.setdefault('meta', {})
        meta[FROZEN_SOURCES_KEY] = sources
        meta[RANDOM_FROZEN_KEY] = any_random_frozen(sources)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        sources, model = _frozen_sources(runner)
        if sources is None:
            return
        recorded = (checkpoint.get('meta') or {}).get(FROZEN_SOURCES_KEY)
        check_frozen_sources(
            sources, recorded,
            override=bool(getattr(model, 'override_frozen_sources', False)),
            source='the loaded checkpoint')

    def _record(self, runner, mode: str) -> None:
        sources, _ = _frozen_sources(runner)
        if sources is not None:
            runner.message_hub.update_info(f'{mode}/frozen_sources', sources)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._record(runner, 'val')

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._record(runner, 'test')
