# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Memory-bank utilities: greedy coreset selection, chunked nearest
neighbours, and the hook that finalises memory banks after fitting.

Fitting design (PatchCore, few-shot CLIPPromptAD): the Runner's ordinary
``EpochBasedTrainLoop`` (``max_epochs=1``) feeds the normal training images;
the model's ``train_step`` only accumulates features (no optimizer step, so
the optimizer config is a formality: ``SGD`` with ``lr=0``). At the end of
the epoch :class:`MemoryBankFitHook` calls ``model.finalize_fit()``
(coreset subsampling, calibration), before ``CheckpointHook`` saves the
bank. ``predict`` also finalises pending features itself, so a model fitted
outside the Runner behaves the same.
"""
from typing import Optional, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import Tensor

from mmdet.registry import HOOKS


def random_projection(features: Tensor, dim: int, seed: int = 0) -> Tensor:
    """Johnson-Lindenstrauss Gaussian random projection (N, D) -> (N, dim).

    Returns the input when ``dim`` is not smaller than ``D``.
    """
    n, d = features.shape
    if dim is None or dim <= 0 or dim >= d:
        return features
    gen = torch.Generator(device='cpu').manual_seed(seed)
    proj = torch.randn(d, dim, generator=gen) / dim**0.5
    return features @ proj.to(features)


def greedy_coreset(features: Tensor,
                   num_samples: int,
                   projection_dim: Optional[int] = 128,
                   seed: int = 0,
                   start_index: Optional[int] = None) -> Tensor:
    """Greedy k-center coreset (PatchCore, Alg. 1).

    Starting from one point, repeatedly adds the point farthest (Euclidean,
    after an optional random projection) from the points selected so far.

    Args:
        features (Tensor): (N, D).
        num_samples (int): How many points to keep (clipped to [1, N]).
        projection_dim (int, optional): Random-projection size used for the
            distance computations (128 in PatchCore; ``None`` = exact).
        seed (int): Seed of the projection and of the start point.
        start_index (int, optional): First point; random when ``None``.

    Returns:
        Tensor: (num_samples,) long indices into ``features``, in selection
        order.
    """
    n = features.shape[0]
    num_samples = max(1, min(int(num_samples), n))
    if num_samples == n:
        return torch.arange(n, device=features.device)
    x = random_projection(features.float(), projection_dim, seed)
    if start_index is None:
        gen = torch.Generator(device='cpu').manual_seed(seed)
        start_index = int(torch.randint(n, (1, ), generator=gen))
    selected = torch.empty(num_samples, dtype=torch.long, device=x.device)
    selected[0] = start_index
    min_dist = torch.linalg.vector_norm(x - x[start_index], dim=1)
    for i in range(1, num_samples):
        idx = torch.argmax(min_dist)
        selected[i] = idx
        dist = torch.linalg.vector_norm(x - x[idx], dim=1)
        min_dist = torch.minimum(min_dist, dist)
    return selected


def nearest_neighbors(queries: Tensor,
                      bank: Tensor,
                      k: int = 1,
                      chunk_size: int = 4096) -> Tuple[Tensor, Tensor]:
    """Euclidean k nearest neighbours of ``queries`` (Q, D) in ``bank``
    (M, D), computed in chunks of ``chunk_size`` queries.

    Returns:
        tuple: distances (Q, k) ascending and indices (Q, k).
    """
    k = min(k, bank.shape[0])
    dists, idxs = [], []
    for start in range(0, queries.shape[0], chunk_size):
        d = torch.cdist(queries[start:start + chunk_size].float(),
                        bank.float())
        val, idx = torch.topk(d, k, dim=1, largest=False)
        dists.append(val)
        idxs.append(idx)
    return torch.cat(dists), torch.cat(idxs)


@HOOKS.register_module()
class MemoryBankFitHook(Hook):
    """Calls ``model.finalize_fit()`` at the end of each training epoch.

    Runs at ``ABOVE_NORMAL`` priority, i.e. before ``CheckpointHook``, so
    the saved checkpoint holds the finished memory bank.
    """

    priority = 'ABOVE_NORMAL'

    def after_train_epoch(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if hasattr(model, 'finalize_fit'):
            model.finalize_fit()
