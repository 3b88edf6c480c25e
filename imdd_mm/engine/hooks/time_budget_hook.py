# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Stop training after a wall-clock budget (equal-time comparisons)."""
import json
import os
import time
from typing import Optional

from mmdet.registry import HOOKS
from mmengine.hooks import Hook


@HOOKS.register_module()
class TimeBudgetHook(Hook):
    """End training once ``seconds`` of training wall-clock time have passed
    and save the model reached as ``<work_dir>/time_budget.pth``.

    Used to give two methods the same training time (e.g. the frozen-feature
    recipe's Stage 2 and a from-scratch U-Net). The time counts from the
    first training iteration (set-up and data conversion excluded); the
    iterations reached are written to ``<work_dir>/time_budget.json``.

    Args:
        seconds (float): The budget, > 0.
        clock (str): ``'wall'`` (default) or ``'cpu'``: this process's CPU
            time (all its threads), which is fair between runs on a shared,
            loaded machine (a run that waits for the CPU is not charged).
    """

    priority = 'LOW'

    def __init__(self, seconds: float, clock: str = 'wall') -> None:
        if not float(seconds) > 0:
            raise ValueError(f'seconds must be > 0, got {seconds}')
        if clock not in ('wall', 'cpu'):
            raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
        self.seconds = float(seconds)
        self.clock = clock
        self._now = (time.perf_counter if clock == 'wall' else
                     time.process_time)
        self._start: Optional[float] = None
        self._saved = False

    def before_train(self, runner) -> None:
        self._start = None
        self._saved = False

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self._start is None:
            self._start = self._now()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        elapsed = self._now() - self._start
        if elapsed >= self.seconds:
            runner.train_loop.stop_training = True
            self._save(runner, elapsed, stopped=True)

    def after_train(self, runner) -> None:
        if self._start is not None:
            self._save(runner, self._now() - self._start,
                       stopped=False)

    def _save(self, runner, elapsed: float, stopped: bool) -> None:
        if self._saved:
            return
        self._saved = True
        runner.save_checkpoint(runner.work_dir, 'time_budget.pth',
                               save_optimizer=False,
                               save_param_scheduler=False)
        info = dict(budget_s=self.seconds, clock=self.clock,
                    elapsed_s=round(elapsed, 2), iters=runner.iter,
                    stopped_by_budget=stopped)
        path = os.path.join(runner.work_dir, 'time_budget.json')
        tmp = path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(info, f, indent=2)
        os.replace(tmp, path)
        runner.logger.info(f'time budget: {info}')
