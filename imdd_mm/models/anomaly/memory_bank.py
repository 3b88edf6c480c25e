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
import time
from typing import Optional, Tuple, Union

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
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


class FitProgress:
    """Progress lines with an ETA for long memory-bank fits.

    Logs ``"<task>: done/total (pct %), elapsed s, ETA s"`` through
    mmengine's ``print_log`` (the Runner's log file and the console) at most
    every ``interval`` seconds, plus a first and a last line. ``enabled``
    False is silent.

    Args:
        task (str): What is being fitted, e.g. ``'PatchCore coreset'``.
        total (int): Number of steps.
        interval (float): Seconds between lines. Defaults to 10.
        enabled (bool): Log at all. Defaults to True.
    """

    def __init__(self, task: str, total: int, interval: float = 10.0,
                 enabled: bool = True) -> None:
        self.task = task
        self.total = max(int(total), 1)
        self.interval = float(interval)
        self.enabled = bool(enabled)
        self.start = time.perf_counter()
        self.last = self.start
        if self.enabled:
            print_log(f'{task}: 0/{self.total} started', logger='current')

    def update(self, done: int) -> None:
        """Report ``done`` steps finished (logs when ``interval`` passed)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if done < self.total and now - self.last < self.interval:
            return
        self.last = now
        elapsed = now - self.start
        rate = done / elapsed if elapsed > 0 else float('inf')
        eta = (self.total - done) / rate if rate > 0 else float('inf')
        print_log(
            f'{self.task}: {done}/{self.total} '
            f'({100.0 * done / self.total:.0f} %), {elapsed:.0f} s elapsed, '
            f'ETA {eta:.0f} s', logger='current')


def greedy_coreset(features: Tensor,
                   num_samples: int,
                   projection_dim: Optional[int] = 128,
                   seed: int = 0,
                   start_index: Optional[int] = None,
                   device: Optional[Union[str, torch.device]] = None,
                   progress: bool = False) -> Tensor:
    """Greedy k-center coreset (PatchCore, Alg. 1), exact.

    Starting from one point, repeatedly adds the point farthest (Euclidean,
    after an optional Johnson-Lindenstrauss random projection, as in
    PatchCore) from the points selected so far.

    Speed: the projected points live on ``device`` (the GPU when the
    features are there or ``device='cuda'``); each step is one
    matrix-vector product ``||x||^2 - 2 x.c`` (squared distances, same
    argmax and minimum as the Euclidean ones) and an in-place minimum, so
    no (N, D) temporary is allocated per step. Cost: ``num_samples`` passes
    over the (N, projection_dim) points.

    Args:
        features (Tensor): (N, D).
        num_samples (int): How many points to keep (clipped to [1, N]).
        projection_dim (int, optional): Random-projection size used for the
            distance computations (128 in PatchCore; ``None`` = exact).
        seed (int): Seed of the projection and of the start point.
        start_index (int, optional): First point; random when ``None``.
        device (str | torch.device, optional): Where to run the selection;
            defaults to the features' device.
        progress (bool): Log progress lines with an ETA
            (:class:`FitProgress`). Defaults to False.

    Returns:
        Tensor: (num_samples,) long indices into ``features`` (on the
        features' device), in selection order.
    """
    n = features.shape[0]
    out_device = features.device
    num_samples = max(1, min(int(num_samples), n))
    if num_samples == n:
        return torch.arange(n, device=out_device)
    x = random_projection(features.float(), projection_dim, seed)
    if device is not None:
        x = x.to(device)
    x = x.contiguous()
    if start_index is None:
        gen = torch.Generator(device='cpu').manual_seed(seed)
        start_index = int(torch.randint(n, (1, ), generator=gen))
    sq_norm = (x * x).sum(dim=1)
    selected = torch.empty(num_samples, dtype=torch.long, device=x.device)
    selected[0] = start_index
    min_dist = _sq_dist_to(x, sq_norm, int(start_index))
    buf = torch.empty_like(min_dist)
    report = FitProgress('greedy coreset', num_samples, enabled=progress)
    for i in range(1, num_samples):
        idx = torch.argmax(min_dist)
        selected[i] = idx
        torch.minimum(min_dist, _sq_dist_to(x, sq_norm, idx, out=buf),
                      out=min_dist)
        if progress and i % 256 == 0:
            report.update(i + 1)
    report.update(num_samples)
    return selected.to(out_device)


def _sq_dist_to(x: Tensor, sq_norm: Tensor, idx, out=None) -> Tensor:
    """Squared distances (N,) of the rows of ``x`` to ``x[idx]``."""
    c = x[idx]
    d = torch.mv(x, c, out=out)
    d.mul_(-2.0).add_(sq_norm).add_(sq_norm[idx])
    return d.clamp_(min=0.0)


def subsample_patches(features: Tensor, max_patches: Optional[int],
                      seed: int = 0) -> Tensor:
    """First subsampling stage: a seeded uniform random subset of at most
    ``max_patches`` rows of ``features`` (N, D), in their original order;
    all rows when ``max_patches`` is ``None`` or not smaller than N."""
    n = features.shape[0]
    if max_patches is None or int(max_patches) >= n:
        return features
    gen = torch.Generator(device='cpu').manual_seed(seed)
    keep = torch.randperm(n, generator=gen)[:int(max_patches)].sort().values
    return features[keep.to(features.device)]


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
