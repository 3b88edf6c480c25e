# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import socket

import imdd_mm  # noqa: F401
import pytest
import torch

from imdd_mm.models.losses import CaptionGroundingLoss
from ._dist_helper import dist_worker, make_batch


_batch = make_batch


@pytest.mark.parametrize('softmax_over', ['queries', 'words'])
def test_matching_captions_give_lower_loss(softmax_over):
    loss_fn = CaptionGroundingLoss(softmax_over=softmax_over, loss_weight=1.0)
    q, w, m = _batch()
    matched = loss_fn(q, w, m)
    shuffled = loss_fn(q, w.roll(1, dims=0), m)
    assert matched < shuffled
    assert matched >= 0


def test_loss_weight_and_gradients():
    q, w, m = _batch()
    q.requires_grad_(True)
    l1 = CaptionGroundingLoss(loss_weight=1.0)(q, w, m)
    l5 = CaptionGroundingLoss(loss_weight=0.5)(q, w, m)
    assert torch.allclose(l5, 0.5 * l1)
    l1.backward()
    assert q.grad is not None and q.grad.abs().sum() > 0


def test_samples_without_nouns_are_left_out():
    loss_fn = CaptionGroundingLoss(loss_weight=1.0)
    q, w, m = _batch(num=3)
    m2 = m.clone()
    m2[2] = False  # sample 2 has no caption nouns
    partial = loss_fn(q, w, m2)
    only_two = loss_fn(q[:2], w[:2], m[:2])
    assert torch.allclose(partial, only_two, atol=1e-6)
    # fewer than two captioned samples: zero, but differentiable
    q.requires_grad_(True)
    none = loss_fn(q, w, torch.zeros_like(m))
    assert none.item() == 0.0
    none.backward()
    assert q.grad is not None


def test_padding_words_do_not_change_scores():
    loss_fn = CaptionGroundingLoss(loss_weight=1.0)
    q, w, m = _batch()
    w_pad = torch.cat([w, torch.randn(w.shape[0], 2, w.shape[2])], dim=1)
    m_pad = torch.cat([m, torch.zeros(m.shape[0], 2, dtype=torch.bool)], 1)
    assert torch.allclose(loss_fn(q, w, m), loss_fn(q, w_pad, m_pad),
                          atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match='softmax_over'):
        CaptionGroundingLoss(softmax_over='pixels')
    with pytest.raises(ValueError, match='temperature'):
        CaptionGroundingLoss(temperature=0)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_distributed_gather_matches_single_process(tmp_path):
    """Two gloo ranks with two samples each give the loss and the (DDP
    averaged) gradients of one process with the whole batch of four."""
    import torch.multiprocessing as mp
    result = str(tmp_path / 'dist.pth')
    mp.spawn(
        dist_worker, args=(2, _free_port(), result), nprocs=2, join=True)
    out = torch.load(result)
    q, w, m = _batch(num=4)
    q.requires_grad_(True)
    full = CaptionGroundingLoss(loss_weight=1.0)(q, w, m)
    full.backward()
    assert torch.allclose(out['loss'], full.detach(), atol=1e-5)
    # each rank's loss is a mean over its 2 samples (against all 4), so
    # the DDP-averaged gradients equal the full-batch gradients
    assert torch.allclose(out['grad'], q.grad, atol=1e-5)
