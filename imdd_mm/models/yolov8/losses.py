# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Box helpers of the YOLOv8 baseline: distance <-> box conversion and the
Complete-IoU (CIoU) value used by the task-aligned assigner.

The training losses themselves are mmdet's: ``CIoULoss`` (box, weight 7.5),
``DistributionFocalLoss`` (DFL, weight 1.5) and ``CrossEntropyLoss`` with
``use_sigmoid=True`` (classification BCE against IoU-aware soft targets,
weight 0.5).

CIoU follows Zheng et al., "Distance-IoU Loss" (AAAI 2020):
``CIoU = IoU - rho^2 / c^2 - alpha * v`` with
``v = 4 / pi^2 * (atan(w_g / h_g) - atan(w_p / h_p))^2`` and
``alpha = v / (1 - IoU + v)``.
"""
import math

import torch
from torch import Tensor


def bbox_ciou(pred: Tensor, target: Tensor, eps: float = 1e-7) -> Tensor:
    """Element-wise CIoU of two box sets in (x1, y1, x2, y2).

    Args:
        pred (Tensor): (..., 4) boxes.
        target (Tensor): (..., 4) boxes, broadcastable to ``pred``.
        eps (float): Numerical guard.

    Returns:
        Tensor: (...) CIoU values in [-1, 1].
    """
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    pw, ph = px2 - px1, py2 - py1 + eps
    tw, th = tx2 - tx1, ty2 - ty1 + eps
    inter = (torch.min(px2, tx2) - torch.max(px1, tx1)).clamp(0) * \
        (torch.min(py2, ty2) - torch.max(py1, ty1)).clamp(0)
    union = pw * ph + tw * th - inter + eps
    iou = inter / union
    cw = torch.max(px2, tx2) - torch.min(px1, tx1)
    ch = torch.max(py2, ty2) - torch.min(py1, ty1)
    c2 = cw**2 + ch**2 + eps
    rho2 = ((tx1 + tx2 - px1 - px2)**2 + (ty1 + ty2 - py1 - py2)**2) / 4
    v = (4 / math.pi**2) * (torch.atan(tw / th) - torch.atan(pw / ph))**2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


def dist2bbox(distance: Tensor, points: Tensor) -> Tensor:
    """(l, t, r, b) distances from ``points`` -> (x1, y1, x2, y2) boxes.

    Args:
        distance (Tensor): (..., A, 4) non-negative distances.
        points (Tensor): (A, 2) anchor points (x, y) in the same units.
    """
    lt, rb = distance.split(2, dim=-1)
    return torch.cat([points - lt, points + rb], dim=-1)


def bbox2dist(points: Tensor, bboxes: Tensor, max_dist: float) -> Tensor:
    """(x1, y1, x2, y2) boxes -> (l, t, r, b) distances from ``points``,
    clamped to ``[0, max_dist]``.

    Args:
        points (Tensor): (N, 2) anchor points.
        bboxes (Tensor): (N, 4) boxes.
        max_dist (float): Upper clamp (``reg_max - 1 - 0.01`` for DFL).
    """
    lt = points - bboxes[..., :2]
    rb = bboxes[..., 2:] - points
    return torch.cat([lt, rb], dim=-1).clamp(0, max_dist)
