# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Plain supervised U-Net segmentation baseline (closed set, from scratch).

The reference that a frozen-diffusion-feature model must beat: MMSeg's
``UNet`` (Ronneberger et al. 2015) trained end to end from random weights on
the labelled masks, with a 1x1 classifier over ``K + 1`` classes (0 = normal)
and the same DetDataSample predictions as ``IMDDMask2Former`` (docs/DESIGN.md
"Samples"), so the same metrics and tools evaluate it.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData, PixelData
from mmseg.models.backbones import UNet
from torch import Tensor

from ..detectors.postprocess import map_prediction_labels, masks_to_boxes
from ..detectors.vocabulary_hook import vocabulary_label_map
from ...evaluation.metrics.sample_utils import to_numpy


@MODELS.register_module()
class SupervisedUNetSegmenter(BaseDetector):
    """U-Net + 1x1 classifier, trained with pixel cross-entropy and a
    defect-vs-normal Dice loss.

    Args:
        unet (dict): keyword arguments of ``mmseg.models.backbones.UNet``
            (``in_channels`` 3, ``base_channels``, ``num_stages``, ...).
        num_classes (int): defect classes ``K`` (closed set; the dataset's
            ``classes`` in order).
        dice_weight (float): weight of the Dice loss on ``1 - p(normal)``.
            Defaults to 1.0.
        class_names (Sequence[str], optional): the ``num_classes`` training
            class names, in label order. When given and the evaluated
            dataset's classes differ (``eval_dataset_vocabulary``, set by
            ``VocabularyHook``; e.g. a test split that adds classes never
            trained on), predictions are relabelled to the dataset's
            category indices by name, names outside it after them
            (``pred_label_names`` records the label names). Without it the
            labels index the dataset's classes directly.
        test_cfg (dict, optional): ``sem_seg_thr`` (0.5): a pixel is
            defective when ``1 - p(normal) >= sem_seg_thr``;
            ``image_score_thr`` (0.5).
        data_preprocessor / init_cfg: as in mmdet.

    Predictions: ``pred_score_map`` = ``1 - p(normal)``; ``pred_sem_seg`` =
    the most probable defect class where the score passes ``sem_seg_thr``;
    ``pred_instances`` one mask per predicted class (score = its mean
    probability inside the mask); ``pred_image_score`` = the maximum score;
    ``pred_image_label`` = the class with the largest probability mass over
    the defective pixels (-1 below ``image_score_thr``).
    """

    def __init__(self,
                 unet: ConfigType,
                 num_classes: int,
                 dice_weight: float = 1.0,
                 class_names: Optional[Sequence[str]] = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        if int(num_classes) < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = int(num_classes)
        if class_names is not None and len(class_names) != self.num_classes:
            raise ValueError(f'class_names has {len(class_names)} names '
                             f'{list(class_names)} but num_classes is '
                             f'{self.num_classes}')
        self.class_names: Optional[Tuple[str, ...]] = (
            tuple(str(c) for c in class_names)
            if class_names is not None else None)
        # the evaluated dataset's classes (VocabularyHook sets them)
        self.eval_dataset_vocabulary: Optional[Tuple[str, ...]] = None
        # MMSeg's UNet builds its up-sampling layers (InterpConv, ...) from
        # the registry of the current scope: build it in mmseg's
        with DefaultScope.overwrite_default_scope('mmseg'):
            self.unet = UNet(**dict(unet))
        self.classifier = nn.Conv2d(self.unet.base_channels,
                                    self.num_classes + 1, 1)
        self.dice_weight = float(dice_weight)
        self.test_cfg = dict(test_cfg or {})
        self.size_divisor = 2**(self.unet.num_stages - 1)

    def _logits(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        d = self.size_divisor
        ph, pw = (-h) % d, (-w) % d
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        logits = self.classifier(self.unet(x)[-1])
        return logits[..., :h, :w]

    def extract_feat(self, batch_inputs: Tensor):
        return self.unet(batch_inputs)

    def _forward(self, batch_inputs: Tensor,
                 batch_data_samples: OptConfigType = None) -> Tensor:
        return self._logits(batch_inputs)

    @staticmethod
    def _label_map(sample, shape) -> Tensor:
        """(H, W) long: 0 normal, k + 1 class k (later instances win)."""
        target = torch.zeros(shape, dtype=torch.long)
        gt = sample.gt_instances
        if len(gt) == 0:
            return target
        masks = torch.as_tensor(to_numpy(gt.masks)).bool()
        for m, label in zip(masks, gt.labels.tolist()):
            hh, ww = min(shape[0], m.shape[0]), min(shape[1], m.shape[1])
            region = torch.zeros(shape, dtype=torch.bool)
            region[:hh, :ww] = m[:hh, :ww]
            target[region] = int(label) + 1
        return target

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        logits = self._logits(batch_inputs)
        shape = tuple(logits.shape[-2:])
        target = torch.stack([self._label_map(s, shape)
                              for s in batch_data_samples]).to(logits.device)
        loss_ce = F.cross_entropy(logits, target)
        defect = 1 - logits.softmax(1)[:, 0]
        is_defect = (target > 0).float()
        inter = (defect * is_defect).flatten(1).sum(1)
        denom = defect.flatten(1).sum(1) + is_defect.flatten(1).sum(1)
        loss_dice = (1 - (2 * inter + 1) / (denom + 1)).mean()
        return dict(loss_ce=loss_ce, loss_dice=self.dice_weight * loss_dice)

    def label_space(self) -> Tuple[Optional[Tuple[str, ...]],
                                   Optional[Tensor]]:
        """Label names of the predictions and the training-label ->
        label lookup table (None: labels are the training labels)."""
        classes = self.eval_dataset_vocabulary
        if self.class_names is None or not classes or \
                tuple(classes) == self.class_names:
            return self.class_names, None
        lut, names, _ = vocabulary_label_map(self.class_names,
                                             tuple(classes))
        return names, torch.tensor(lut, dtype=torch.long)

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        sem_thr = float(self.test_cfg.get('sem_seg_thr', 0.5))
        image_thr = float(self.test_cfg.get('image_score_thr', 0.5))
        logits = self._logits(batch_inputs)
        label_names, lut = self.label_space()
        for i, sample in enumerate(batch_data_samples):
            meta = sample.metainfo
            h, w = meta['img_shape'][:2]
            lg = logits[i:i + 1, :, :h, :w]
            if rescale and 'ori_shape' in meta:
                oh, ow = meta['ori_shape'][:2]
                if (oh, ow) != (h, w):
                    lg = F.interpolate(lg, size=(oh, ow), mode='bilinear',
                                       align_corners=False)
            prob = lg[0].float().softmax(0)  # (K+1, H, W)
            score = (1 - prob[0]).clamp(0, 1)
            cls = prob[1:].argmax(0)  # (H, W) in 0..K-1
            defective = score >= sem_thr
            sem = torch.where(defective, cls + 1, torch.zeros_like(cls))
            sample.pred_sem_seg = PixelData(sem_seg=sem[None].long())
            sample.pred_score_map = PixelData(data=score[None].float())
            labels, masks, scores = [], [], []
            for k in sem.unique().tolist():
                if k == 0:
                    continue
                m = sem == k
                labels.append(k - 1)
                masks.append(m)
                scores.append(prob[k][m].mean())
            inst = InstanceData()
            if masks:
                inst.masks = torch.stack(masks)
                inst.labels = torch.tensor(labels, dtype=torch.long)
                inst.scores = torch.stack(scores).float()
            else:
                inst.masks = torch.zeros((0, *score.shape), dtype=torch.bool)
                inst.labels = torch.zeros(0, dtype=torch.long)
                inst.scores = torch.zeros(0)
            inst.bboxes = masks_to_boxes(inst.masks)
            sample.pred_instances = inst
            image_score = float(score.max())
            if image_score >= image_thr:
                mass = (prob[1:] * defective).flatten(1).sum(1)
                if not bool(defective.any()):
                    mass = prob[1:].flatten(1).amax(1)
                image_label = int(mass.argmax())
            else:
                image_label = -1
            sample.set_field(image_label, 'pred_image_label',
                             field_type='data')
            sample.set_field(image_score, 'pred_image_score',
                             field_type='data')
            if lut is not None:
                map_prediction_labels(sample, lut)
            if label_names is not None:
                sample.set_metainfo(dict(pred_label_names=label_names))
        return batch_data_samples
