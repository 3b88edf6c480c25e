# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Boxes from masks under the two box conventions (docs/DESIGN.md, "Box
convention"): one box per mask, or one box per 8-connected component."""
from typing import Tuple

import numpy as np
import torch
from mmengine.structures import PixelData
from torch import Tensor


def defect_score_map(cls_logits: Tensor, mask_logits: Tensor) -> Tensor:
    """Per-pixel defect probability ``max_q max_k p_qk * sigmoid(m_q)``
    (p: softmax over the K classes and no-object, no-object dropped).

    Args:
        cls_logits (Tensor): (Q, K+1) class logits (last = no object).
        mask_logits (Tensor): (Q, H, W) mask logits.

    Returns:
        Tensor: (H, W) float32 in [0, 1].
    """
    if cls_logits.shape[0] == 0:
        return mask_logits.new_zeros(mask_logits.shape[-2:],
                                     dtype=torch.float32)
    probs = torch.softmax(cls_logits.float(), dim=-1)[:, :-1]
    # max_q max_k p_qk * m_q = max_q (max_k p_qk) * m_q  (m_q >= 0)
    score = (probs.amax(dim=1)[:, None, None] *
             mask_logits.float().sigmoid()).amax(0)
    return score.clamp(0, 1)


def masks_to_boxes(masks: Tensor) -> Tensor:
    """Tight xyxy boxes of binary masks (pixel-edge convention: a single
    pixel at (x, y) gives ``[x, y, x + 1, y + 1]``); empty masks give zeros.

    Args:
        masks (Tensor): (N, H, W) bool.

    Returns:
        Tensor: (N, 4) float32.
    """
    num = masks.shape[0]
    boxes = masks.new_zeros((num, 4), dtype=torch.float32)
    if num == 0:
        return boxes
    rows = masks.any(dim=2)  # (N, H)
    cols = masks.any(dim=1)  # (N, W)
    nonempty = rows.any(dim=1)
    h, w = masks.shape[-2:]
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    big = max(h, w) + 1
    y1 = torch.where(rows, ar_h, big).amin(dim=1)
    y2 = torch.where(rows, ar_h, -1).amax(dim=1) + 1
    x1 = torch.where(cols, ar_w, big).amin(dim=1)
    x2 = torch.where(cols, ar_w, -1).amax(dim=1) + 1
    boxes[:, 0], boxes[:, 1] = x1.float(), y1.float()
    boxes[:, 2], boxes[:, 3] = x2.float(), y2.float()
    boxes[~nonempty] = 0
    return boxes


def split_components(masks: Tensor, labels: Tensor,
                     scores: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Split every mask into its 8-connected components; label and score are
    repeated per component and empty masks are dropped.

    Args:
        masks (Tensor): (N, H, W) bool.
        labels (Tensor): (N,) long.
        scores (Tensor): (N,) float.

    Returns:
        tuple[Tensor, Tensor, Tensor]: Component masks (M, H, W), labels
        (M,), scores (M,).
    """
    import cv2
    out_masks, out_labels = [], []
    masks_np = masks.cpu().numpy().astype(np.uint8)
    for i, mask in enumerate(masks_np):
        if not mask.any():
            continue
        num, comp = cv2.connectedComponents(mask, connectivity=8)
        for c in range(1, num):
            out_masks.append(torch.from_numpy(comp == c))
            out_labels.append(i)
    if not out_masks:
        return (masks.new_zeros((0, ) + tuple(masks.shape[-2:])),
                labels[:0], scores[:0])
    idx = torch.tensor(out_labels, device=labels.device)
    return (torch.stack(out_masks).to(masks.device), labels[idx],
            scores[idx])


def map_prediction_labels(sample, lut: Tensor) -> None:
    """Relabel one sample's predictions through a lookup table.

    ``lut[k]`` is the new label of label ``k`` (e.g. a vocabulary index ->
    the evaluated dataset's category index, :func:`vocabulary_label_map`);
    applied to ``pred_instances.labels``, ``pred_sem_seg`` (0 = normal,
    ``k + 1`` = label ``k``) and ``pred_image_label`` (-1 stays -1).

    Args:
        sample (DetDataSample): A post-processed prediction.
        lut (Tensor): (K,) long.
    """
    inst = sample.pred_instances
    inst.labels = lut.to(inst.labels.device)[inst.labels]
    sem = sample.pred_sem_seg.sem_seg
    mapped = torch.cat([sem.new_zeros(1), lut.to(sem.device) + 1])[sem]
    sample.pred_sem_seg = PixelData(sem_seg=mapped)
    label = sample.pred_image_label
    if label >= 0:
        sample.set_field(int(lut[label]), 'pred_image_label',
                         field_type='data')
