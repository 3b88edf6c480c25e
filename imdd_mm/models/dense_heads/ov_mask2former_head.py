# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Open-vocabulary Mask2Former head (paper §4.6, eq. 12-14).

Parts of ``__init__`` and ``_loss_by_feat_single`` follow mmdet 3.3's
``Mask2FormerHead`` (Apache-2.0, OpenMMLab); the closed-set classifier is
replaced by text-embedding classification.
"""
import copy
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import Conv2d
from mmcv.ops import point_sample
from mmdet.models.dense_heads import Mask2FormerHead
from mmdet.models.dense_heads.anchor_free_head import AnchorFreeHead
from mmdet.models.layers import (Mask2FormerTransformerDecoder,
                                 SinePositionalEncoding)
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import SampleList
from mmdet.models.utils import get_uncertain_point_coords_with_randomness
from mmdet.utils import (ConfigType, OptConfigType, OptMultiConfig,
                         reduce_mean)
from mmengine.model import ModuleList
from mmengine.structures import InstanceData
from torch import Tensor

from .vocabulary import OpenVocabClassifierMixin, nouns_of

#: Mask2Former transformer decoder of the paper: 9 layers, 8 heads, 256-d.
DEFAULT_TRANSFORMER_DECODER = dict(
    return_intermediate=True,
    num_layers=9,
    layer_cfg=dict(
        self_attn_cfg=dict(
            embed_dims=256, num_heads=8, dropout=0.0, batch_first=True),
        cross_attn_cfg=dict(
            embed_dims=256, num_heads=8, dropout=0.0, batch_first=True),
        ffn_cfg=dict(
            embed_dims=256,
            feedforward_channels=2048,
            num_fcs=2,
            ffn_drop=0.0,
            act_cfg=dict(type='ReLU', inplace=True))),
    init_cfg=None)


@MODELS.register_module()
class OVMask2FormerHead(OpenVocabClassifierMixin, Mask2FormerHead):
    """Mask2Former head that classifies masks against text embeddings.

    Every decoder layer's query embedding ``e_q`` (B, Q, feat_channels) is
    projected to the text space and classified by

    ``logits = exp(logit_scale) * norm(proj(e_q)) @ norm([T_vocab; t_void]).T``

    with ``T_vocab`` (K, D) the cached, template-averaged text embeddings of
    the active vocabulary and ``t_void`` a learnable no-object embedding.
    The number of classes follows the vocabulary (``set_vocabulary``), so
    training and matching are class-agnostic and the vocabulary can be
    replaced at test time by names never seen in training.

    Samples whose metainfo says ``is_normal=False`` but which carry no
    instance masks (caption- or image-label-only samples) are excluded from
    the classification loss and produce no mask/dice loss; they still train
    the caption grounding loss. Defect-free samples (no instances, normal)
    train every query towards "no object" and give zero mask and dice loss.

    Args:
        in_channels (list[int]): Channels of the input maps (high to low
            resolution), e.g. ``[320, 640, 1280, 1280]``.
        feat_channels (int): Pixel/transformer decoder width. Defaults to 256.
        out_channels (int): Mask feature channels. Defaults to 256.
        text_encoder (dict): Config of a frozen text encoder (``encode``,
            ``encode_names``, ``embed_dim``); it is held outside the module
            tree, so it is in neither ``state_dict()`` nor ``parameters()``.
        vocabulary (Sequence[str], optional): Initial category names. Usually
            set later from the dataset's ``metainfo['classes']``.
        prompt_templates (Sequence[str], optional): Templates with ``{}`` for
            ``encode_names``; None uses the encoder's defaults.
        noun_templates (Sequence[str], optional): Prompt templates for the
            caption nouns of the grounding loss. None (default, paper): each
            noun is encoded as written.
        num_queries (int): Number of queries. Defaults to 100.
        num_transformer_feat_level (int): Levels fed to the transformer
            decoder. Defaults to 3.
        pixel_decoder (dict): Pixel decoder config; FPN by default, or
            mmdet's ``MSDeformAttnPixelDecoder``.
        transformer_decoder (dict, optional): Mask2Former decoder config;
            defaults to 9 layers (paper Table 9).
        logit_scale_init (float): Initial log logit scale (CLIP's
            ``log(1/0.07)``).
        learnable_logit_scale (bool): Whether the scale trains.
        max_logit_scale (float): Clamp of ``exp(logit_scale)``.
        void_weight (float): Class weight of the no-object class in the
            classification loss (mmdet's 0.1).
        loss_cls (dict): Cross-entropy config; ``class_weight`` is filled in
            from the vocabulary size.
        loss_mask (dict): Mask BCE config (paper L_mask, weight 1.0).
        loss_dice (dict): Dice config.
        loss_grounding (dict, optional): Caption grounding loss config
            (``CaptionGroundingLoss``); None disables it.
        strides (Sequence[int], optional): Image strides of the input maps
            (checked against ``in_channels``; given to an MSDeformAttn pixel
            decoder, which needs them).
        train_cfg / test_cfg / init_cfg: As in mmdet.

    Every argument is explicit: an unknown config key fails at build.
    """

    def __init__(self,
                 in_channels: List[int],
                 feat_channels: int = 256,
                 out_channels: int = 256,
                 text_encoder: ConfigType = dict(type='CLIPTextEncoder'),
                 vocabulary: Optional[Sequence[str]] = None,
                 prompt_templates: Optional[Sequence[str]] = None,
                 noun_templates: Optional[Sequence[str]] = None,
                 num_queries: int = 100,
                 num_transformer_feat_level: int = 3,
                 pixel_decoder: ConfigType = dict(
                     type='MultiScaleFPNPixelDecoder'),
                 enforce_decoder_input_project: bool = False,
                 transformer_decoder: OptConfigType = None,
                 positional_encoding: ConfigType = dict(
                     num_feats=128, normalize=True),
                 logit_scale_init: float = math.log(1 / 0.07),
                 learnable_logit_scale: bool = True,
                 max_logit_scale: float = 100.0,
                 void_weight: float = 0.1,
                 loss_cls: ConfigType = dict(
                     type='CrossEntropyLoss',
                     use_sigmoid=False,
                     loss_weight=0.5,
                     reduction='mean'),
                 loss_mask: ConfigType = dict(
                     type='CrossEntropyLoss',
                     use_sigmoid=True,
                     reduction='mean',
                     loss_weight=1.0),
                 loss_dice: ConfigType = dict(
                     type='DiceLoss',
                     use_sigmoid=True,
                     activate=True,
                     reduction='mean',
                     naive_dice=True,
                     eps=1.0,
                     loss_weight=1.0),
                 loss_grounding: OptConfigType = dict(
                     type='CaptionGroundingLoss', loss_weight=0.5),
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None,
                 strides: Optional[Sequence[int]] = None) -> None:
        # Mask2FormerHead.__init__ asserts an MSDeformAttn pixel decoder and
        # builds a closed-set ``cls_embed``; build the same parts here.
        super(AnchorFreeHead, self).__init__(init_cfg=init_cfg)
        transformer_decoder = copy.deepcopy(
            transformer_decoder or DEFAULT_TRANSFORMER_DECODER)
        self.num_queries = num_queries
        self.num_transformer_feat_level = num_transformer_feat_level
        self.num_heads = transformer_decoder['layer_cfg']['cross_attn_cfg'][
            'num_heads']
        self.num_transformer_decoder_layers = transformer_decoder[
            'num_layers']

        if strides is not None and len(strides) != len(in_channels):
            raise ValueError(
                f'OVMask2FormerHead: {len(strides)} strides {list(strides)} '
                f'for {len(in_channels)} input maps {list(in_channels)}')
        pixel_decoder_ = copy.deepcopy(dict(pixel_decoder))
        pixel_decoder_.update(
            in_channels=in_channels,
            feat_channels=feat_channels,
            out_channels=out_channels)
        if strides is not None and 'MSDeformAttn' in str(
                pixel_decoder_.get('type', '')):
            pixel_decoder_.setdefault('strides', list(strides))
        if 'FPN' in str(pixel_decoder_.get('type', '')):
            pixel_decoder_.setdefault('num_outs', num_transformer_feat_level)
        self.pixel_decoder = MODELS.build(pixel_decoder_)
        self.transformer_decoder = Mask2FormerTransformerDecoder(
            **transformer_decoder)
        self.decoder_embed_dims = self.transformer_decoder.embed_dims
        self.decoder_input_projs = ModuleList()
        for _ in range(num_transformer_feat_level):
            if (self.decoder_embed_dims != feat_channels
                    or enforce_decoder_input_project):
                self.decoder_input_projs.append(
                    Conv2d(
                        feat_channels, self.decoder_embed_dims,
                        kernel_size=1))
            else:
                self.decoder_input_projs.append(nn.Identity())
        self.decoder_positional_encoding = SinePositionalEncoding(
            **positional_encoding)
        self.query_embed = nn.Embedding(self.num_queries, feat_channels)
        self.query_feat = nn.Embedding(self.num_queries, feat_channels)
        self.level_embed = nn.Embedding(self.num_transformer_feat_level,
                                        feat_channels)
        self.mask_embed = nn.Sequential(
            nn.Linear(feat_channels, feat_channels), nn.ReLU(inplace=True),
            nn.Linear(feat_channels, feat_channels), nn.ReLU(inplace=True),
            nn.Linear(feat_channels, out_channels))

        self.test_cfg = test_cfg
        self.train_cfg = train_cfg
        if train_cfg:
            self.assigner = TASK_UTILS.build(train_cfg['assigner'])
            self.sampler = TASK_UTILS.build(
                train_cfg['sampler'], default_args=dict(context=self))
            self.num_points = train_cfg.get('num_points', 12544)
            self.oversample_ratio = train_cfg.get('oversample_ratio', 3.0)
            self.importance_sample_ratio = train_cfg.get(
                'importance_sample_ratio', 0.75)

        loss_cls = copy.deepcopy(dict(loss_cls))
        loss_cls.pop('class_weight', None)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)
        self.loss_grounding = (
            MODELS.build(loss_grounding)
            if loss_grounding is not None else None)

        self._init_open_vocab(
            text_encoder=text_encoder,
            query_dim=feat_channels,
            prompt_templates=prompt_templates,
            logit_scale_init=logit_scale_init,
            learnable_logit_scale=learnable_logit_scale,
            max_logit_scale=max_logit_scale,
            void_weight=void_weight,
            noun_templates=noun_templates)
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    # ------------------------------------------------------------------
    # forward
    def _forward_head(self, decoder_out: Tensor, mask_feature: Tensor,
                      attn_mask_target_size: Tuple[int, int]
                      ) -> Tuple[Tensor, Tensor, Tensor]:
        """Per-layer prediction (see mmdet); classification is open-vocab.

        Returns:
            tuple: ``cls_pred`` (B, Q, K+1) logits (last = no object),
            ``mask_pred`` (B, Q, h, w) logits and the attention mask
            (B*num_heads, Q, h'*w') bool.
        """
        decoder_out = self.transformer_decoder.post_norm(decoder_out)
        query_embeds = self.embed_queries(decoder_out)
        self._query_embeds.append(query_embeds)
        cls_pred = self.classify(query_embeds)
        mask_embed = self.mask_embed(decoder_out)
        mask_pred = torch.einsum('bqc,bchw->bqhw', mask_embed, mask_feature)
        attn_mask = F.interpolate(
            mask_pred,
            attn_mask_target_size,
            mode='bilinear',
            align_corners=False)
        attn_mask = attn_mask.flatten(2).unsqueeze(1).repeat(
            (1, self.num_heads, 1, 1)).flatten(0, 1)
        attn_mask = attn_mask.sigmoid() < 0.5
        attn_mask = attn_mask.detach()
        return cls_pred, mask_pred, attn_mask

    def forward_with_embeddings(
            self, x: List[Tensor], batch_data_samples: SampleList
    ) -> Tuple[List[Tensor], List[Tensor], Tensor]:
        """Forward returning also the last layer's normalised query
        embeddings (B, Q, D) in the text space."""
        self._require_vocabulary()
        self._query_embeds = []
        try:
            cls_list, mask_list = Mask2FormerHead.forward(
                self, list(x), batch_data_samples)
            embeds = self._query_embeds[-1]
        finally:
            self._query_embeds = []
        return cls_list, mask_list, embeds

    def forward(self, x: List[Tensor],
                batch_data_samples: SampleList) -> Tuple[List[Tensor]]:
        cls_list, mask_list, _ = self.forward_with_embeddings(
            x, batch_data_samples)
        return cls_list, mask_list

    # ------------------------------------------------------------------
    # losses
    def loss(self, x: List[Tensor],
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Mask2Former losses (cls, mask BCE, dice for every decoder layer)
        plus the caption grounding loss.

        Args:
            x (list[Tensor]): Multi-scale features, high to low resolution.
            batch_data_samples (list[DetDataSample]): With ``gt_instances``
                and metainfo ``caption``/``caption_nouns``/``is_normal``.

        Returns:
            dict[str, Tensor]: Loss components.
        """
        batch_img_metas, batch_gt_instances, batch_gt_sem = [], [], []
        for data_sample in batch_data_samples:
            batch_img_metas.append(data_sample.metainfo)
            batch_gt_instances.append(data_sample.gt_instances)
            batch_gt_sem.append(data_sample.get('gt_sem_seg', None))
        cls_list, mask_list, embeds = self.forward_with_embeddings(
            x, batch_data_samples)
        batch_gt_instances = self.preprocess_gt(batch_gt_instances,
                                                batch_gt_sem)
        losses = self.loss_by_feat(cls_list, mask_list, batch_gt_instances,
                                   batch_img_metas)
        if self.loss_grounding is not None:
            losses['loss_grounding'] = self.grounding_loss(
                embeds, [nouns_of(meta) for meta in batch_img_metas])
        return losses

    def grounding_loss(self, query_embeds: Tensor,
                       batch_nouns: List[List[str]]) -> Tensor:
        """Caption grounding loss (eq. 13-14) of one batch.

        Args:
            query_embeds (Tensor): (B, Q, D) normalised query embeddings.
            batch_nouns (list[list[str]]): Nouns of each sample's caption
                (empty: the sample takes no part).

        Returns:
            Tensor: Scalar loss (weighted).
        """
        word_embeds, word_mask = self.encode_words(batch_nouns,
                                                   query_embeds.device)
        return self.loss_grounding(query_embeds, word_embeds, word_mask)

    @staticmethod
    def _is_unannotated(img_meta: dict, num_gts: int) -> bool:
        """A defective sample without instance masks (caption or image-label
        only): no classification or mask supervision."""
        return num_gts == 0 and img_meta.get('is_normal', True) is False

    def _get_targets_single(self, cls_score: Tensor, mask_pred: Tensor,
                            gt_instances: InstanceData,
                            img_meta: dict) -> Tuple[Tensor]:
        results = list(super()._get_targets_single(cls_score, mask_pred,
                                                   gt_instances, img_meta))
        if self._is_unannotated(img_meta, len(gt_instances)):
            results[1] = torch.zeros_like(results[1])  # label_weights
        return tuple(results)

    def _loss_by_feat_single(self, cls_scores: Tensor, mask_preds: Tensor,
                             batch_gt_instances: List[InstanceData],
                             batch_img_metas: List[dict]) -> Tuple[Tensor]:
        """Losses of one decoder layer (mmdet's, with a vocabulary-sized
        class weight and label weights in the normaliser).

        Args:
            cls_scores (Tensor): (B, Q, K+1) logits.
            mask_preds (Tensor): (B, Q, h, w) mask logits.
            batch_gt_instances (list[InstanceData]): ``labels``, ``masks``.
            batch_img_metas (list[dict]): Image metas.

        Returns:
            tuple[Tensor]: ``loss_cls``, ``loss_mask``, ``loss_dice``.
        """
        num_imgs = cls_scores.size(0)
        (labels_list, label_weights_list, mask_targets_list,
         mask_weights_list, avg_factor) = self.get_targets(
             [cls_scores[i] for i in range(num_imgs)],
             [mask_preds[i] for i in range(num_imgs)], batch_gt_instances,
             batch_img_metas)
        labels = torch.stack(labels_list, dim=0).flatten(0, 1)
        label_weights = torch.stack(label_weights_list, dim=0).flatten(0, 1)
        mask_targets = torch.cat(mask_targets_list, dim=0)
        mask_weights = torch.stack(mask_weights_list, dim=0)

        cls_scores = cls_scores.flatten(0, 1)
        class_weight = cls_scores.new_tensor(self.class_weight)
        self.loss_cls.class_weight = self.class_weight
        cls_avg = (class_weight[labels] * label_weights.float()).sum()
        loss_cls = self.loss_cls(
            cls_scores,
            labels,
            label_weights,
            avg_factor=cls_avg.clamp(min=1.0))

        num_total_masks = reduce_mean(cls_scores.new_tensor([avg_factor]))
        num_total_masks = max(num_total_masks, 1)
        mask_preds = mask_preds[mask_weights > 0]
        if mask_targets.shape[0] == 0:
            # no matched ground truth: zero losses that keep the graph
            zero = mask_preds.sum() * 0.0
            return loss_cls, zero, zero

        with torch.no_grad():
            points_coords = get_uncertain_point_coords_with_randomness(
                mask_preds.unsqueeze(1), None, self.num_points,
                self.oversample_ratio, self.importance_sample_ratio)
            mask_point_targets = point_sample(
                mask_targets.unsqueeze(1).float(), points_coords).squeeze(1)
        mask_point_preds = point_sample(
            mask_preds.unsqueeze(1), points_coords).squeeze(1)
        loss_dice = self.loss_dice(
            mask_point_preds, mask_point_targets, avg_factor=num_total_masks)
        loss_mask = self.loss_mask(
            mask_point_preds.reshape(-1),
            mask_point_targets.reshape(-1),
            avg_factor=num_total_masks * self.num_points)
        return loss_cls, loss_mask, loss_dice
