# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""TimeBudgetHook stops the loop once the budget is spent and saves the
model reached, once."""
import json
import time
from types import SimpleNamespace

import pytest

from imdd_mm.engine.hooks import TimeBudgetHook


class FakeRunner:
    def __init__(self, work_dir):
        self.work_dir = str(work_dir)
        self.iter = 0
        self.train_loop = SimpleNamespace(stop_training=False)
        self.saved = []
        self.logger = SimpleNamespace(info=lambda msg: None)

    def save_checkpoint(self, out_dir, filename, **kwargs):
        self.saved.append(filename)


def test_stops_after_budget(tmp_path):
    runner = FakeRunner(tmp_path)
    hook = TimeBudgetHook(seconds=0.05)
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    hook.after_train_iter(runner, 0)
    assert not runner.train_loop.stop_training
    time.sleep(0.06)
    runner.iter = 7
    hook.after_train_iter(runner, 1)
    assert runner.train_loop.stop_training
    hook.after_train(runner)
    assert runner.saved == ['time_budget.pth']
    info = json.loads((tmp_path / 'time_budget.json').read_text())
    assert info['iters'] == 7 and info['stopped_by_budget']


def test_saves_at_the_end_when_budget_not_spent(tmp_path):
    runner = FakeRunner(tmp_path)
    hook = TimeBudgetHook(seconds=100)
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    hook.after_train_iter(runner, 0)
    hook.after_train(runner)
    assert runner.saved == ['time_budget.pth']
    info = json.loads((tmp_path / 'time_budget.json').read_text())
    assert not info['stopped_by_budget']


def test_bad_budget():
    with pytest.raises(ValueError, match='seconds'):
        TimeBudgetHook(seconds=0)
    with pytest.raises(ValueError, match='clock'):
        TimeBudgetHook(seconds=1, clock='gpu')


def test_cpu_clock_does_not_count_waiting(tmp_path):
    runner = FakeRunner(tmp_path)
    hook = TimeBudgetHook(seconds=0.05, clock='cpu')
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    time.sleep(0.1)  # waiting is not CPU time
    hook.after_train_iter(runner, 0)
    assert not runner.train_loop.stop_training
    t0 = time.process_time()
    while time.process_time() - t0 < 0.06:
        pass
    hook.after_train_iter(runner, 1)
    assert runner.train_loop.stop_training
