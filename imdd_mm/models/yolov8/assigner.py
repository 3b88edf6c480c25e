# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Batched task-aligned assigner of YOLOv8 (TOOD, Feng et al. ICCV 2021).

For every ground-truth box ``g`` and anchor point ``a`` whose centre lies
inside ``g``, the alignment metric is ``t = s^alpha * u^beta`` where ``s`` is
the predicted score of g's class and ``u`` the CIoU (clamped at 0) of the
predicted box with ``g``. The ``topk`` anchors of each box by ``t`` (among
those inside it) are its positives; an anchor claimed by several boxes goes
to the one it overlaps most. The soft classification target of a positive is
``t`` re-normalised per box so that the box's best anchor gets the box's best
IoU: ``t * max_u / max_t``.

Why not mmdet's ``TaskAlignedAssigner``: it assigns one image at a time,
picks the top-k over *all* priors before filtering by "centre inside", and
leaves the metric normalisation to the head; YOLOv8 restricts candidates to
anchors inside the box first, uses CIoU and works on the whole padded batch.
"""
from typing import Dict

import torch
import torch.nn.functional as F
from mmdet.registry import TASK_UTILS
from torch import Tensor

from .losses import bbox_ciou


@TASK_UTILS.register_module()
class YOLOv8TaskAlignedAssigner:
    """Task-aligned assigner working on a padded batch.

    Args:
        num_classes (int): Number of classes.
        topk (int): Positives per ground-truth box. Defaults to 10.
        alpha (float): Exponent of the classification score. Defaults to 0.5.
        beta (float): Exponent of the IoU. Defaults to 6.0.
        eps (float): Numerical guard. Defaults to 1e-9.
    """

    def __init__(self,
                 num_classes: int,
                 topk: int = 10,
                 alpha: float = 0.5,
                 beta: float = 6.0,
                 eps: float = 1e-9) -> None:
        self.num_classes = num_classes
        self.topk = topk
        self.alpha = alpha
        self.beta = beta
        self.eps = eps

    @torch.no_grad()
    def assign(self, pred_scores: Tensor, pred_bboxes: Tensor,
               anchor_points: Tensor, gt_labels: Tensor, gt_bboxes: Tensor,
               pad_mask: Tensor) -> Dict[str, Tensor]:
        """Assign targets to the anchors of a batch.

        Args:
            pred_scores (Tensor): (B, A, C) sigmoid scores.
            pred_bboxes (Tensor): (B, A, 4) decoded boxes, xyxy, pixels.
            anchor_points (Tensor): (A, 2) anchor centres, pixels.
            gt_labels (Tensor): (B, M) long class indices (padded).
            gt_bboxes (Tensor): (B, M, 4) xyxy pixels (padded).
            pad_mask (Tensor): (B, M) bool, True for real boxes.

        Returns:
            dict: ``labels`` (B, A) long (``num_classes`` = background),
            ``bboxes`` (B, A, 4), ``scores`` (B, A, C) soft targets,
            ``fg_mask`` (B, A) bool, ``gt_idx`` (B, A) long.
        """
        bs, num_anchors, num_classes = pred_scores.shape
        num_gts = gt_bboxes.shape[1]
        device = pred_scores.device
        if num_gts == 0:
            return dict(
                labels=torch.full((bs, num_anchors), self.num_classes,
                                  dtype=torch.long, device=device),
                bboxes=torch.zeros_like(pred_bboxes),
                scores=torch.zeros_like(pred_scores),
                fg_mask=torch.zeros((bs, num_anchors), dtype=torch.bool,
                                    device=device),
                gt_idx=torch.zeros((bs, num_anchors), dtype=torch.long,
                                   device=device))

        pred_scores = pred_scores.float()
        pred_bboxes = pred_bboxes.float()
        gt_bboxes = gt_bboxes.float()
        # (B, M, A): anchor centre strictly inside the gt box
        lt = anchor_points[None, None] - gt_bboxes[:, :, None, :2]
        rb = gt_bboxes[:, :, None, 2:] - anchor_points[None, None]
        in_gts = torch.cat([lt, rb], -1).amin(-1) > self.eps
        candidate = in_gts & pad_mask[:, :, None]

        overlaps = pred_bboxes.new_zeros((bs, num_gts, num_anchors))
        scores = pred_bboxes.new_zeros((bs, num_gts, num_anchors))
        b_idx, g_idx, a_idx = candidate.nonzero(as_tuple=True)
        if b_idx.numel():
            overlaps[b_idx, g_idx, a_idx] = bbox_ciou(
                pred_bboxes[b_idx, a_idx],
                gt_bboxes[b_idx, g_idx]).clamp_(0)
            scores[b_idx, g_idx, a_idx] = pred_scores[
                b_idx, a_idx, gt_labels[b_idx, g_idx]]
        align_metric = scores.pow(self.alpha) * overlaps.pow(self.beta)

        # top-k anchors per gt among the candidates
        topk = min(self.topk, num_anchors)
        metric_for_topk = align_metric.masked_fill(~candidate, -1.0)
        topk_idx = metric_for_topk.topk(topk, dim=-1).indices
        is_topk = torch.zeros_like(candidate)
        is_topk.scatter_(-1, topk_idx, True)
        mask_pos = is_topk & candidate

        # anchors claimed by several gts keep the gt of highest overlap
        multi = mask_pos.sum(1) > 1  # (B, A)
        if multi.any():
            best = overlaps.masked_fill(~mask_pos, -1.0).argmax(1)
            best_onehot = F.one_hot(best, num_gts).permute(0, 2, 1).bool()
            mask_pos = torch.where(multi[:, None], best_onehot, mask_pos)
        fg_mask = mask_pos.any(1)
        gt_idx = mask_pos.float().argmax(1)  # (B, A)

        batch_ar = torch.arange(bs, device=device)[:, None]
        labels = gt_labels[batch_ar, gt_idx].clamp(0, num_classes - 1)
        bboxes = gt_bboxes[batch_ar, gt_idx]
        target_scores = F.one_hot(labels, num_classes).to(pred_scores.dtype)
        target_scores = target_scores * fg_mask[..., None]

        # normalise the alignment metric per gt to its best IoU
        align_metric = align_metric * mask_pos
        max_metric = align_metric.amax(-1, keepdim=True)
        max_overlap = (overlaps * mask_pos).amax(-1, keepdim=True)
        norm = (align_metric * max_overlap / (max_metric + self.eps)).amax(1)
        target_scores = target_scores * norm[..., None]
        labels = torch.where(fg_mask, labels,
                             torch.full_like(labels, self.num_classes))
        return dict(labels=labels, bboxes=bboxes, scores=target_scores,
                    fg_mask=fg_mask, gt_idx=gt_idx)
