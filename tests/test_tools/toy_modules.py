# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""A toy regression model, dataset and hook used by the tool tests (train,
resume, distributed). Imported through ``custom_imports`` of
``tests/data/toy_config.py``; the repository root must be on PYTHONPATH."""
import json
import os
import os.path as osp

import torch
import torch.nn as nn
from mmdet.registry import DATASETS, HOOKS, MODELS
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from torch.utils.data import Dataset


@MODELS.register_module()
class ToyRegressor(BaseModel):
    """y = w·x + b fitted with an MSE loss."""

    def __init__(self, in_dim: int = 4, data_preprocessor=None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.linear = nn.Linear(in_dim, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, list) else inputs
        pred = self.linear(x).squeeze(-1)
        if mode == 'loss':
            y = torch.stack(data_samples) if isinstance(
                data_samples, list) else data_samples
            return dict(loss=((pred - y)**2).mean())
        return [dict(pred=p) for p in pred]


@DATASETS.register_module()
class ToyRegressionDataset(Dataset):
    """Deterministic samples: x ~ N(0, 1) from a fixed seed, y = x·w*."""

    def __init__(self, num: int = 32, in_dim: int = 4, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(num, in_dim, generator=g)
        w = torch.arange(1, in_dim + 1, dtype=torch.float32)
        self.y = self.x @ w + 0.5
        self.metainfo = dict(classes=('toy', ))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, idx):
        return dict(inputs=self.x[idx], data_samples=self.y[idx])


@HOOKS.register_module()
class RankRecordHook(Hook):
    """Writes ``rank<r>.json`` with the iterations this rank trained and its
    final weights, so a test can check every rank trained in lock-step."""

    def __init__(self) -> None:
        self.iters = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.iters += 1

    def after_train(self, runner):
        model = runner.model
        model = getattr(model, 'module', model)
        import torch.distributed as torch_dist
        record = dict(
            rank=get_rank(),
            backend=(torch_dist.get_backend()
                     if torch_dist.is_initialized() else None),
            device=str(next(model.parameters()).device),
            iters=self.iters,
            final_iter=runner.iter,
            weight=model.linear.weight.detach().flatten().tolist())
        with open(osp.join(runner.work_dir, f'rank{get_rank()}.json'),
                  'w') as f:
            json.dump(record, f)
        os.sync()
