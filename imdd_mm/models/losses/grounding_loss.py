# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Caption grounding loss (paper eq. 13-14)."""
from typing import Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor


def _world() -> Tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` (same shape on every rank) over ranks along
    dim 0, keeping gradients (``torch.distributed.nn.functional.all_gather``).
    Returns ``tensor`` unchanged without an initialised process group."""
    rank, world = _world()
    if world == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather
    return torch.cat(all_gather(tensor), dim=0)


def gather_no_grad(tensor: Tensor) -> Tensor:
    """``all_gather`` without gradients (same shape on every rank)."""
    rank, world = _world()
    if world == 1:
        return tensor
    out = [torch.zeros_like(tensor) for _ in range(world)]
    dist.all_gather(out, tensor.contiguous())
    return torch.cat(out, dim=0)


def _pad_words(word_embeds: Tensor, word_mask: Tensor,
               width: int) -> Tuple[Tensor, Tensor]:
    pad = width - word_embeds.shape[1]
    if pad > 0:
        word_embeds = F.pad(word_embeds, (0, 0, 0, pad))
        word_mask = F.pad(word_mask, (0, pad), value=False)
    return word_embeds, word_mask


@MODELS.register_module()
class CaptionGroundingLoss(nn.Module):
    """Bidirectional image-caption contrastive loss over grounding scores.

    For image ``m`` with normalised query embeddings ``z_i`` (N of them) and
    caption ``n`` with normalised noun embeddings ``w_k`` (K_n nouns), the
    grounding score (eq. 13) is

    ``g(m, n) = 1/K_n * sum_k sum_i p(z_i)_k * <z_i, w_k>``

    ``softmax_over='words'`` (default, eq. 13 as the paper writes it):
    ``p(z_i)`` is the softmax of ``<z_i, w_k> / temperature`` over the nouns
    ``k`` of the caption, so every query spreads a unit of weight over the
    nouns and ``g`` sums over all queries (``query_reduction='sum'``, the
    paper's formula; ``'mean'`` divides by N, keeping ``g`` in [-1, 1]).
    ``softmax_over='queries'`` (option, the other reading): the softmax runs
    over the queries ``i`` for each noun, so each noun is grounded in a
    convex combination of masks and ``g`` stays in [-1, 1] (no reduction
    applies). Eq. 14: cross-entropy over captions for each image plus over
    images for each caption, logits ``g / temperature``, averaged over the
    samples that have nouns. Across GPUs the query embeddings are gathered
    with gradients and each rank scores its local images against all
    captions and its local captions against all images (DDP's gradient
    averaging then gives the global loss).

    Args:
        temperature (float): tau of eq. 14 (and of the softmax in eq. 13).
            Defaults to 0.07.
        softmax_over (str): ``'words'`` (default, paper) or ``'queries'``.
        query_reduction (str): ``'sum'`` (default, paper) or ``'mean'`` over
            the queries in ``softmax_over='words'``.
        loss_weight (float): Weight (paper eq. 16: 0.5).
        gather (bool): Gather over ranks when distributed. Defaults to True.
    """

    def __init__(self,
                 temperature: float = 0.07,
                 softmax_over: str = 'words',
                 query_reduction: str = 'sum',
                 loss_weight: float = 0.5,
                 gather: bool = True) -> None:
        super().__init__()
        if softmax_over not in ('queries', 'words'):
            raise ValueError("softmax_over must be 'queries' or 'words', "
                             f'got {softmax_over!r}')
        if query_reduction not in ('sum', 'mean'):
            raise ValueError("query_reduction must be 'sum' or 'mean', "
                             f'got {query_reduction!r}')
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.temperature = float(temperature)
        self.softmax_over = softmax_over
        self.query_reduction = query_reduction
        self.loss_weight = float(loss_weight)
        self.gather = gather

    def grounding_scores(self, query_embeds: Tensor, word_embeds: Tensor,
                         word_mask: Tensor) -> Tensor:
        """Eq. 13 for every (image, caption) pair.

        Args:
            query_embeds (Tensor): (M, Q, D) normalised.
            word_embeds (Tensor): (N, W, D) normalised.
            word_mask (Tensor): (N, W) bool, real nouns.

        Returns:
            Tensor: (M, N) grounding scores.
        """
        sim = torch.einsum('mqd,nwd->mnqw', query_embeds.float(),
                           word_embeds.float())
        mask = word_mask[None, :, None, :]
        logits = sim / self.temperature
        if self.softmax_over == 'queries':
            prob = logits.softmax(dim=2)
            per_word = (prob * sim).sum(dim=2)  # (M, N, W)
        else:
            logits = logits.masked_fill(~mask, float('-inf'))
            prob = torch.nan_to_num(logits.softmax(dim=3), nan=0.0)
            per_word = (prob * sim).sum(dim=2)  # (M, N, W)
            if self.query_reduction == 'mean':
                per_word = per_word / sim.shape[2]
        per_word = per_word * word_mask[None].float()
        num_words = word_mask.sum(dim=1).clamp(min=1).float()  # (N,)
        return per_word.sum(dim=2) / num_words[None]

    def forward(self, query_embeds: Tensor, word_embeds: Tensor,
                word_mask: Tensor) -> Tensor:
        """Compute the weighted loss.

        Args:
            query_embeds (Tensor): (B, Q, D) normalised, local batch.
            word_embeds (Tensor): (B, W, D) normalised noun embeddings.
            word_mask (Tensor): (B, W) bool; a sample without nouns (all
                False) takes no part.

        Returns:
            Tensor: Scalar loss; zero (with graph) when fewer than two
            samples in the (global) batch have nouns.
        """
        rank, world = _world()
        local_b = query_embeds.shape[0]
        valid_local = word_mask.any(dim=1)
        if self.gather and world > 1:
            width = torch.tensor([word_embeds.shape[1]],
                                 device=word_embeds.device)
            dist.all_reduce(width, op=dist.ReduceOp.MAX)
            word_embeds, word_mask = _pad_words(word_embeds, word_mask,
                                                int(width.item()))
            all_queries = gather_with_grad(query_embeds.contiguous())
            all_words = gather_no_grad(word_embeds.contiguous())
            all_mask = gather_no_grad(word_mask.contiguous())
            offset = rank * local_b
        else:
            all_queries, all_words, all_mask, offset = (query_embeds,
                                                        word_embeds,
                                                        word_mask, 0)
        valid_all = all_mask.any(dim=1)
        # every rank must back-propagate through the gather (a collective),
        # also when it has nothing to score
        zero = query_embeds.sum() * 0.0 + all_queries.sum() * 0.0
        if int(valid_all.sum()) < 2 or not bool(valid_local.any()):
            return zero
        local = torch.arange(local_b, device=query_embeds.device) + offset
        # image -> caption: local images against all captions
        g_i2t = self.grounding_scores(query_embeds, all_words, all_mask)
        g_i2t = (g_i2t / self.temperature).masked_fill(
            ~valid_all[None], float('-inf'))
        loss_i2t = F.cross_entropy(
            g_i2t[valid_local], local[valid_local], reduction='sum')
        # caption -> image: local captions against all images
        g_t2i = self.grounding_scores(all_queries, word_embeds, word_mask).t()
        g_t2i = (g_t2i / self.temperature).masked_fill(
            ~valid_all[None], float('-inf'))
        loss_t2i = F.cross_entropy(
            g_t2i[valid_local], local[valid_local], reduction='sum')
        num_valid = valid_local.sum().clamp(min=1)
        loss = (loss_i2t + loss_t2i) / num_valid
        return self.loss_weight * loss + zero
