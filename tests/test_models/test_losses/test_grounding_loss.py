# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import socket

import math

import imdd_mm  # noqa: F401
import numpy as np
import pytest
import torch

from imdd_mm.models.losses import CaptionGroundingLoss
from ._dist_helper import dist_worker, make_batch


_batch = make_batch


def _reference_loss(z, w, tau, softmax_over, reduction='sum'):
    """Eq. 13-14 written out with plain Python loops over numpy arrays.

    z: (B, N, D) query embeddings, w: per caption a (K_n, D) array of noun
    embeddings. Returns (g (B, B) with g[m][n] = g(I_m, s_n), loss)."""
    B, N = z.shape[:2]
    g = [[0.0] * B for _ in range(B)]
    for m in range(B):
        for n in range(B):
            K = len(w[n])
            sims = [[float(np.dot(z[m, i], w[n][k])) for k in range(K)]
                    for i in range(N)]
            total = 0.0
            for k in range(K):
                for i in range(N):
                    if softmax_over == 'words':  # softmax over the nouns k
                        den = sum(math.exp(sims[i][j] / tau)
                                  for j in range(K))
                    else:  # softmax over the queries i
                        den = sum(math.exp(sims[j][k] / tau)
                                  for j in range(N))
                    p = math.exp(sims[i][k] / tau) / den
                    total += p * sims[i][k]
            if softmax_over == 'words' and reduction == 'mean':
                total /= N
            g[m][n] = total / K
    loss = 0.0
    for m in range(B):
        row = sum(math.exp(g[m][n] / tau) for n in range(B))
        col = sum(math.exp(g[n][m] / tau) for n in range(B))
        loss -= math.log(math.exp(g[m][m] / tau) / row)
        loss -= math.log(math.exp(g[m][m] / tau) / col)
    return np.array(g), loss / B


@pytest.mark.parametrize('softmax_over,reduction', [
    ('words', 'sum'), ('words', 'mean'), ('queries', 'sum')])
def test_eq13_14_match_hand_computed_reference(softmax_over, reduction):
    """2 images, 3 queries, 2 nouns: eq. 13 (grounding scores) and eq. 14
    (bidirectional loss) against a loop-by-loop reference."""
    rng = np.random.RandomState(3)
    z = rng.randn(2, 3, 4)
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    w = rng.randn(2, 2, 4)
    w /= np.linalg.norm(w, axis=-1, keepdims=True)
    tau = 0.5  # a mild temperature keeps every term of the softmaxes alive
    ref_g, ref_loss = _reference_loss(z, w, tau, softmax_over, reduction)
    loss_fn = CaptionGroundingLoss(temperature=tau, softmax_over=softmax_over,
                                   query_reduction=reduction,
                                   loss_weight=1.0)
    zt = torch.tensor(z, dtype=torch.float32)
    wt = torch.tensor(w, dtype=torch.float32)
    mask = torch.ones(2, 2, dtype=torch.bool)
    g = loss_fn.grounding_scores(zt, wt, mask)
    np.testing.assert_allclose(g.numpy(), ref_g, rtol=1e-5, atol=1e-6)
    assert loss_fn(zt, wt, mask).item() == pytest.approx(ref_loss, rel=1e-5)


def test_default_is_the_papers_softmax_over_nouns():
    loss_fn = CaptionGroundingLoss()
    assert (loss_fn.softmax_over, loss_fn.query_reduction) == ('words',
                                                               'sum')
    # as written, p(z_i) sums to one over the K nouns and g sums over the N
    # queries: identical unit queries and nouns give g = N / K
    z = torch.nn.functional.normalize(torch.ones(1, 3, 4), dim=-1)
    g = loss_fn.grounding_scores(z, z[:, :2], torch.ones(1, 2, dtype=bool))
    assert g.item() == pytest.approx(3 / 2, rel=1e-5)


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
    with pytest.raises(ValueError, match='query_reduction'):
        CaptionGroundingLoss(query_reduction='max')


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
