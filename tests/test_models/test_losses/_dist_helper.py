# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Worker of the 2-process gloo test. Kept free of ``import imdd_mm`` (its
full import is slow): the loss module is loaded from its file."""
import importlib.util
import os
from pathlib import Path

import torch
import torch.nn.functional as F

LOSS_FILE = (Path(__file__).resolve().parents[3] / 'imdd_mm' / 'models' /
             'losses' / 'grounding_loss.py')


def load_loss_cls():
    spec = importlib.util.spec_from_file_location('_imdd_grounding_loss',
                                                  LOSS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CaptionGroundingLoss


def make_batch(seed=0, num=4, queries=6, dim=16, words=3):
    """Queries that contain their own caption's noun embeddings."""
    g = torch.Generator().manual_seed(seed)
    word = F.normalize(torch.randn(num, words, dim, generator=g), dim=-1)
    noise = F.normalize(torch.randn(num, queries, dim, generator=g), dim=-1)
    queries_ = noise.clone()
    queries_[:, :words] = word + 0.1 * noise[:, :words]
    queries_ = F.normalize(queries_, dim=-1)
    mask = torch.ones(num, words, dtype=torch.bool)
    return queries_, word, mask


def dist_worker(rank, world, port, result_path):
    import torch.distributed as dist
    os.environ['MASTER_ADDR'] = '127.0.0.1'
    os.environ['MASTER_PORT'] = str(port)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        loss_cls = load_loss_cls()
        q, w, m = make_batch(num=4)
        local = slice(rank * 2, rank * 2 + 2)
        q_local = q[local].clone().requires_grad_(True)
        loss = loss_cls(loss_weight=1.0)(q_local, w[local], m[local])
        loss.backward()
        # DDP averages parameter gradients over ranks: the per-sample
        # gradient it back-propagates is this rank's gradient / world
        grad = q_local.grad.clone() / world
        loss_avg = loss.detach().clone()
        dist.all_reduce(loss_avg)
        loss_avg /= world
        grads = [torch.zeros_like(grad) for _ in range(world)]
        dist.all_gather(grads, grad)
        if rank == 0:
            torch.save(
                dict(loss=loss_avg, grad=torch.cat(grads)), result_path)
        # both ranks leave the process group together: a rank tearing gloo
        # down while its peer is still connected can abort the peer
        dist.barrier()
    finally:
        dist.destroy_process_group()
