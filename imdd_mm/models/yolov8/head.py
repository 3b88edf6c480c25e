# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Decoupled, anchor-free detection head of YOLOv8 with Distribution Focal
Loss (DFL) box regression.

Per level (strides 8/16/32), two branches of two 3x3 ConvModules and a 1x1
conv each:

* box branch: ``c_box = max(16, C_p3 // 4, 4 * reg_max)`` channels ->
  ``4 * reg_max`` logits: for each side (l, t, r, b) a distribution over
  ``reg_max`` integer distances (in units of the stride); the distance is its
  expectation.
* class branch: ``c_cls = max(C_p3, min(num_classes, 100))`` channels ->
  ``num_classes`` logits (sigmoid).

Anchor points are the feature-cell centres ``((x + 0.5) s, (y + 0.5) s)``.
Training assigns targets with :class:`YOLOv8TaskAlignedAssigner`; losses are
BCE (soft IoU-aware targets), CIoU and DFL, each normalised by the sum of the
soft targets, weighted 0.5 / 7.5 / 1.5, and (as the reference implementation
does) multiplied by the global batch size.
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmcv.ops import batched_nms
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.task_modules.prior_generators import MlvlPointGenerator
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.utils import (ConfigType, InstanceList, OptConfigType,
                         OptInstanceList, OptMultiConfig)
from mmengine.config import ConfigDict
from mmengine.dist import get_world_size
from mmengine.structures import InstanceData
from torch import Tensor

from .layers import YOLOV8_ACT_CFG, YOLOV8_NORM_CFG, scale_channels
from .losses import bbox2dist, dist2bbox


@MODELS.register_module()
class YOLOv8Head(BaseDenseHead):
    """YOLOv8 head.

    Args:
        num_classes (int): Number of object classes.
        in_channels (Sequence[int]): Unscaled input channels of the three
            levels, default (256, 512, 1024).
        widen_factor (float): Width multiplier applied to ``in_channels``.
        last_stage_out_channels (int): Channel cap before widening.
        featmap_strides (Sequence[int]): Strides of the levels.
        reg_max (int): Bins of the box-side distribution. Defaults to 16.
        loss_cls (dict): Sigmoid classification loss (BCE, weight 0.5).
        loss_bbox (dict): Box loss on decoded boxes (CIoU, weight 7.5).
        loss_dfl (dict): Distribution focal loss (weight 1.5).
        loss_scale_by_batch (bool): Multiply the losses by
            ``images per GPU * world size`` (reference behaviour; the
            learning rate 0.01 is tuned for it).
        train_cfg (dict): ``assigner`` config.
        test_cfg (dict): ``score_thr``, ``nms_pre``, ``nms`` (mmcv
            ``batched_nms`` config), ``max_per_img``, ``multi_label``.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: Sequence[int] = (256, 512, 1024),
                 widen_factor: float = 1.0,
                 last_stage_out_channels: int = 1024,
                 featmap_strides: Sequence[int] = (8, 16, 32),
                 reg_max: int = 16,
                 norm_cfg: ConfigType = YOLOV8_NORM_CFG,
                 act_cfg: ConfigType = YOLOV8_ACT_CFG,
                 loss_cls: ConfigType = dict(
                     type='CrossEntropyLoss', use_sigmoid=True,
                     reduction='mean', loss_weight=0.5),
                 loss_bbox: ConfigType = dict(
                     type='CIoULoss', eps=1e-7, reduction='mean',
                     loss_weight=7.5),
                 loss_dfl: ConfigType = dict(
                     type='DistributionFocalLoss', reduction='mean',
                     loss_weight=1.5),
                 loss_scale_by_batch: bool = True,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != len(featmap_strides):
            raise ValueError('in_channels and featmap_strides must have the '
                             f'same length, got {in_channels} and '
                             f'{featmap_strides}')
        self.num_classes = num_classes
        self.in_channels = [
            scale_channels(c, widen_factor, last_stage_out_channels)
            for c in in_channels
        ]
        self.featmap_strides = list(featmap_strides)
        self.num_levels = len(featmap_strides)
        self.reg_max = reg_max
        self.loss_scale_by_batch = loss_scale_by_batch
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

        box_ch = max(16, self.in_channels[0] // 4, reg_max * 4)
        cls_ch = max(self.in_channels[0], min(num_classes, 100))
        cfg = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.reg_preds = nn.ModuleList()
        self.cls_preds = nn.ModuleList()
        for ch in self.in_channels:
            self.reg_preds.append(
                nn.Sequential(
                    ConvModule(ch, box_ch, 3, padding=1, **cfg),
                    ConvModule(box_ch, box_ch, 3, padding=1, **cfg),
                    nn.Conv2d(box_ch, 4 * reg_max, 1)))
            self.cls_preds.append(
                nn.Sequential(
                    ConvModule(ch, cls_ch, 3, padding=1, **cfg),
                    ConvModule(cls_ch, cls_ch, 3, padding=1, **cfg),
                    nn.Conv2d(cls_ch, num_classes, 1)))
        self.register_buffer(
            'proj', torch.arange(reg_max, dtype=torch.float32),
            persistent=False)
        self.prior_generator = MlvlPointGenerator(featmap_strides, offset=0.5)

        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_dfl = MODELS.build(loss_dfl)
        self.assigner = None
        if train_cfg is not None:
            assigner = dict(train_cfg['assigner'])
            assigner.setdefault('num_classes', num_classes)
            self.assigner = TASK_UTILS.build(assigner)
        self._init_biases()

    def _init_biases(self, img_size: int = 640) -> None:
        """Box logits start at 1.0; class logits at ``log(5 / C / n_cells)``
        (about five objects per 640-px image)."""
        for reg, cls, stride in zip(self.reg_preds, self.cls_preds,
                                    self.featmap_strides):
            nn.init.constant_(reg[-1].bias, 1.0)
            nn.init.constant_(
                cls[-1].bias,
                math.log(5 / self.num_classes / (img_size / stride)**2))

    def init_weights(self) -> None:
        super().init_weights()
        self._init_biases()

    def forward(self, x: Tuple[Tensor, ...]) -> Tuple[List[Tensor], ...]:
        """Per level: class logits (B, C, H, W) and side-distribution logits
        (B, 4 * reg_max, H, W)."""
        if len(x) != self.num_levels:
            raise ValueError(f'expected {self.num_levels} levels, got '
                             f'{len(x)}')
        cls_scores = [m(f) for m, f in zip(self.cls_preds, x)]
        bbox_dists = [m(f) for m, f in zip(self.reg_preds, x)]
        return cls_scores, bbox_dists

    # ------------------------------------------------------------ decoding
    def _flatten(self, cls_scores: List[Tensor], bbox_dists: List[Tensor]
                 ) -> Tuple[Tensor, Tensor, Tensor]:
        """-> cls (B, A, C), dist logits (B, A, 4, R), priors (A, 4) with
        (x, y, stride_w, stride_h)."""
        bs = cls_scores[0].shape[0]
        sizes = [c.shape[-2:] for c in cls_scores]
        priors = torch.cat(
            self.prior_generator.grid_priors(
                sizes, dtype=cls_scores[0].dtype,
                device=cls_scores[0].device, with_stride=True), 0)
        cls = torch.cat([
            c.permute(0, 2, 3, 1).reshape(bs, -1, self.num_classes)
            for c in cls_scores
        ], 1)
        dist = torch.cat([
            d.permute(0, 2, 3, 1).reshape(bs, -1, 4, self.reg_max)
            for d in bbox_dists
        ], 1)
        return cls, dist, priors

    def _decode(self, dist: Tensor, priors: Tensor) -> Tensor:
        """Distribution logits (B, A, 4, R) -> boxes (B, A, 4) xyxy, px."""
        dist = dist.float().softmax(-1).matmul(self.proj.to(dist.device))
        stride = priors[:, 2:3]
        return dist2bbox(dist * stride, priors[:, :2])

    # ---------------------------------------------------------------- loss
    def loss_by_feat(
            self,
            cls_scores: List[Tensor],
            bbox_dists: List[Tensor],
            batch_gt_instances: InstanceList,
            batch_img_metas: List[dict],
            batch_gt_instances_ignore: OptInstanceList = None) -> dict:
        """Compute ``loss_cls``, ``loss_bbox`` (CIoU) and ``loss_dfl``.

        Args:
            cls_scores (list[Tensor]): Per level (B, C, H, W) logits.
            bbox_dists (list[Tensor]): Per level (B, 4 * reg_max, H, W).
            batch_gt_instances (list[InstanceData]): ``bboxes`` (N, 4) xyxy
                in input pixels and ``labels`` (N,) per image.
            batch_img_metas (list[dict]): Image metas (unused).
            batch_gt_instances_ignore: Unused (YOLOv8 has no ignore boxes).
        """
        if self.assigner is None:
            raise RuntimeError('YOLOv8Head.loss needs train_cfg.assigner')
        cls, dist, priors = self._flatten(cls_scores, bbox_dists)
        bs, num_anchors = cls.shape[:2]
        pred_bboxes = self._decode(dist, priors)  # (B, A, 4) px

        gt_labels, gt_bboxes, pad_mask = self._pad_gts(
            batch_gt_instances, cls.device)
        targets = self.assigner.assign(
            cls.detach().sigmoid(), pred_bboxes.detach(), priors[:, :2],
            gt_labels, gt_bboxes, pad_mask)
        target_scores = targets['scores']
        fg_mask = targets['fg_mask']
        avg = target_scores.sum().clamp(min=1)

        loss_cls = self.loss_cls(
            cls.reshape(-1, self.num_classes).float(),
            target_scores.reshape(-1, self.num_classes),
            avg_factor=avg)
        if fg_mask.any():
            stride = priors[:, 2:3].expand(bs, -1, -1)[fg_mask]  # (P, 1)
            points = priors[:, :2].expand(bs, -1, -1)[fg_mask] / stride
            weight = target_scores.sum(-1)[fg_mask]  # (P,)
            pred_b = pred_bboxes[fg_mask] / stride
            target_b = targets['bboxes'][fg_mask] / stride
            loss_bbox = self.loss_bbox(
                pred_b, target_b, weight=weight, avg_factor=avg)
            target_d = bbox2dist(points, target_b, self.reg_max - 1 - 0.01)
            loss_dfl = self.loss_dfl(
                dist[fg_mask].reshape(-1, self.reg_max).float(),
                target_d.reshape(-1),
                weight=weight[:, None].expand(-1, 4).reshape(-1),
                avg_factor=avg * 4)
        else:
            loss_bbox = pred_bboxes.sum() * 0
            loss_dfl = dist.sum() * 0
        scale = bs * get_world_size() if self.loss_scale_by_batch else 1
        return dict(
            loss_cls=loss_cls * scale,
            loss_bbox=loss_bbox * scale,
            loss_dfl=loss_dfl * scale)

    def _pad_gts(self, batch_gt_instances: InstanceList, device: torch.device
                 ) -> Tuple[Tensor, Tensor, Tensor]:
        """-> labels (B, M) long, boxes (B, M, 4), real-box mask (B, M)."""
        bs = len(batch_gt_instances)
        num_max = max([len(g) for g in batch_gt_instances] + [0])
        labels = torch.zeros((bs, num_max), dtype=torch.long, device=device)
        bboxes = torch.zeros((bs, num_max, 4), device=device)
        mask = torch.zeros((bs, num_max), dtype=torch.bool, device=device)
        for i, gt in enumerate(batch_gt_instances):
            n = len(gt)
            if n == 0:
                continue
            boxes = gt.bboxes
            boxes = boxes.tensor if hasattr(boxes, 'tensor') else boxes
            labels[i, :n] = gt.labels.to(device).long()
            bboxes[i, :n] = boxes.to(device).float()
            mask[i, :n] = True
        if num_max and (labels[mask].max() >= self.num_classes
                        or labels[mask].min() < 0):
            raise ValueError(
                f'ground-truth label out of range [0, {self.num_classes}): '
                f'{labels[mask].unique().tolist()}')
        return labels, bboxes, mask

    # ------------------------------------------------------------- predict
    def predict_by_feat(self,
                        cls_scores: List[Tensor],
                        bbox_dists: List[Tensor],
                        batch_img_metas: Optional[List[dict]] = None,
                        cfg: OptConfigType = None,
                        rescale: bool = True,
                        with_nms: bool = True) -> InstanceList:
        """Decode, threshold, NMS and (``rescale``) map boxes back to the
        original image (undoing the letterbox of :class:`LetterResize` via
        the ``letterbox_pad`` (top, bottom, left, right) and
        ``scale_factor`` (w, h) metas).

        Returns:
            list[InstanceData]: per image ``bboxes`` (N, 4) xyxy,
            ``scores`` (N,), ``labels`` (N,).
        """
        cfg = ConfigDict(cfg if cfg is not None else (self.test_cfg or {}))
        score_thr = cfg.get('score_thr', 0.001)
        nms_pre = cfg.get('nms_pre', 30000)
        max_per_img = cfg.get('max_per_img', 300)
        multi_label = cfg.get('multi_label', True)
        nms_cfg = cfg.get('nms', dict(type='nms', iou_threshold=0.7))

        cls, dist, priors = self._flatten(cls_scores, bbox_dists)
        scores_all = cls.float().sigmoid()
        bboxes_all = self._decode(dist, priors)
        results = []
        for i in range(cls.shape[0]):
            meta = batch_img_metas[i] if batch_img_metas else {}
            scores, bboxes = scores_all[i], bboxes_all[i]
            if multi_label:
                a_idx, labels = (scores > score_thr).nonzero(as_tuple=True)
                s = scores[a_idx, labels]
            else:
                s, labels = scores.max(-1)
                a_idx = (s > score_thr).nonzero(as_tuple=True)[0]
                s, labels = s[a_idx], labels[a_idx]
            if s.numel() > nms_pre:
                s, order = s.topk(nms_pre)
                a_idx, labels = a_idx[order], labels[order]
            b = bboxes[a_idx]
            if with_nms and s.numel():
                b, keep = batched_nms(b, s, labels, nms_cfg)
                s, labels = b[:, -1], labels[keep]
                b = b[:, :4]
            order = s.argsort(descending=True)[:max_per_img]
            b, s, labels = b[order], s[order], labels[order]
            if rescale:
                b = self._undo_letterbox(b, meta)
            res = InstanceData()
            res.bboxes = b
            res.scores = s
            res.labels = labels
            results.append(res)
        return results

    @staticmethod
    def _undo_letterbox(bboxes: Tensor, meta: dict) -> Tensor:
        """Input-pixel boxes -> original-image boxes, clipped."""
        if bboxes.numel() == 0:
            return bboxes
        bboxes = bboxes.clone()
        pad = meta.get('letterbox_pad')
        if pad is not None:
            top, _, left, _ = [float(p) for p in pad]
            bboxes -= bboxes.new_tensor([left, top, left, top])
        scale = meta.get('scale_factor')
        if scale is not None:
            sw, sh = float(scale[0]), float(scale[1])
            bboxes /= bboxes.new_tensor([sw, sh, sw, sh])
        if 'ori_shape' in meta:
            h, w = meta['ori_shape'][:2]
            bboxes[:, 0::2] = bboxes[:, 0::2].clamp(0, w)
            bboxes[:, 1::2] = bboxes[:, 1::2].clamp(0, h)
        return bboxes
