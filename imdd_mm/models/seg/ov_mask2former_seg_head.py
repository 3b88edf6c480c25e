# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Open-vocabulary Mask2Former decode head for MMSegmentation."""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmseg.models.decode_heads import Mask2FormerHead as SegMask2FormerHead
from mmseg.registry import MODELS as SEG_MODELS
from mmseg.structures import SegDataSample
from torch import Tensor

from ..dense_heads.ov_mask2former_head import OVMask2FormerHead


@SEG_MODELS.register_module()
class OVMask2FormerSegHead(OVMask2FormerHead):
    """:class:`OVMask2FormerHead` with mmseg's decode-head interface.

    Semantic labels become one mask target per present class (as in mmseg's
    ``Mask2FormerHead``); the seg logits are
    ``sum_q softmax(cls_q)[:K] * sigmoid(mask_q)`` (B, K, H, W). The
    vocabulary is the dataset's class list (label 0 included, e.g.
    ``'defect-free surface'``); ``num_classes`` follows it.

    Args:
        num_classes (int, optional): Checked against the vocabulary size
            when both are given.
        align_corners (bool): As in mmseg. Defaults to False.
        ignore_index (int): Ignored label. Defaults to 255.
        **kwargs: :class:`OVMask2FormerHead` arguments (use ``mmdet.``
            prefixes for mmdet components in mmseg configs).
    """

    def __init__(self,
                 num_classes: Optional[int] = None,
                 align_corners: bool = False,
                 ignore_index: int = 255,
                 **kwargs) -> None:
        kwargs.setdefault('loss_grounding', None)
        super().__init__(**kwargs)
        if num_classes is not None and self.vocabulary is not None and \
                num_classes != len(self.vocabulary):
            raise ValueError(f'num_classes={num_classes} but the vocabulary '
                             f'has {len(self.vocabulary)} names')
        self.align_corners = align_corners
        self.ignore_index = ignore_index

    @property
    def out_channels(self) -> int:  # mmseg reads decode_head.out_channels
        return self.num_classes

    def _seg_data_to_instance_data(self, batch_data_samples):
        return SegMask2FormerHead._seg_data_to_instance_data(
            self, batch_data_samples)

    def loss(self, x: Tuple[Tensor], batch_data_samples: List[SegDataSample],
             train_cfg=None) -> dict:
        """mmseg loss: semantic map -> per-class masks -> Mask2Former
        losses."""
        batch_gt_instances, batch_img_metas = \
            self._seg_data_to_instance_data(batch_data_samples)
        cls_list, mask_list, _ = self.forward_with_embeddings(
            list(x), batch_data_samples)
        return self.loss_by_feat(cls_list, mask_list, batch_gt_instances,
                                 batch_img_metas)

    def predict(self, x: Tuple[Tensor], batch_img_metas: List[dict],
                test_cfg=None) -> Tensor:
        """Seg logits (B, K, H_pad, W_pad) in [0, 1]."""
        samples = [SegDataSample(metainfo=m) for m in batch_img_metas]
        cls_list, mask_list, _ = self.forward_with_embeddings(
            list(x), samples)
        size = batch_img_metas[0].get('pad_shape',
                                      batch_img_metas[0]['img_shape'])
        masks = F.interpolate(
            mask_list[-1], size=size, mode='bilinear', align_corners=False)
        cls_score = F.softmax(cls_list[-1], dim=-1)[..., :-1]
        return torch.einsum('bqc,bqhw->bchw', cls_score, masks.sigmoid())
