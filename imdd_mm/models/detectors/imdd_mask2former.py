# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Stage-2 model: frozen diffusion features + open-vocabulary Mask2Former
(paper §4.4-4.7)."""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.detectors import MaskFormer
from mmdet.models.detectors.single_stage import SingleStageDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

from imdd_mm.utils.provenance import enforces_frozen_policy
from ..backbones.frozen import FrozenModulesMixin
from .cached_features import CachedFeaturesMixin
from .postprocess import (defect_score_map, map_prediction_labels,
                          masks_to_boxes, split_components)
from .vocabulary_hook import vocabulary_label_map

COND_MODES = ('implicit', 'caption', 'null', 'none')
BOX_MODES = ('mask', 'components')


@MODELS.register_module()
class IMDDMask2Former(CachedFeaturesMixin, FrozenModulesMixin, MaskFormer):
    """Diffusion-feature open-vocabulary Mask2Former.

    Data flow: image in [-1, 1] -> conditioning ``c`` (B, 1, D) ->
    ``IMDDDiffusionBackbone(img, c)`` -> the maps named by ``feature_keys``
    -> ``OVMask2FormerHead``.

    Conditioning (``cond_mode``):

    - ``'implicit'`` (paper default): ``c = ImplicitCaptioner(img)``;
    - ``'caption'``: ``c = m * e_T + (1 - m) * t_imp`` with ``e_T`` the
      caption's text embedding and ``m = 1`` where a caption exists (during
      training only with probability ``caption_prob``); computing both keeps
      every captioner parameter in the graph (DDP-safe). At evaluation the
      converters' captions (built from the ground-truth classes) are never
      used: the model conditions on ``t_imp`` unless ``test_caption_key``
      names a metainfo key holding a caption the user supplies;
    - ``'null'``: the empty prompt's text embedding (Table 7 "w/o implicit
      text embedding");
    - ``'none'``: zeros (Table 7 "w/o diffusion conditioning").

    Predictions (docs/DESIGN.md, "Samples"): ``pred_instances`` (masks,
    labels, scores, bboxes per ``box_mode``), ``pred_sem_seg`` (0 = normal,
    k+1 = class k), ``pred_score_map`` (per-pixel defect probability
    ``max_q max_k p_qk * sigmoid(m_q)``), ``pred_image_label`` (-1 = normal)
    and ``pred_image_score`` (max instance score). Labels index the
    ``pred_label_names`` metainfo: the vocabulary in use, or, when it
    differs from the evaluated dataset's classes (``VocabularyHook``), the
    dataset's classes matched by name followed by the vocabulary's names
    that are no dataset class (:func:`vocabulary_label_map`).

    Args:
        backbone (dict): ``IMDDDiffusionBackbone`` config.
        panoptic_head (dict): ``OVMask2FormerHead`` config; ``in_channels``
            defaults to the backbone's channels of ``feature_keys``.
        captioner (dict, optional): ``ImplicitCaptioner`` config (required
            for 'implicit' and 'caption').
        caption_text_encoder (dict, optional): Text encoder for captions and
            the null prompt; defaults to the head's text encoder.
        cond_mode (str): See above. Defaults to 'implicit'.
        caption_prob (float): Probability of caption conditioning in training
            ('caption' mode). Defaults to 0.5.
        test_caption_key (str, optional): 'caption' mode at evaluation: the
            metainfo key of a user-supplied caption to condition on where it
            is non-empty. None (default): the implicit caption only, so no
            ground-truth-derived caption leaks into predictions.
        freeze_captioner (bool): Freeze the captioner MLP (paper Table 9).
            When False, the backbone's ``cond_grad`` is switched on so the
            MLP learns through the frozen U-Net.
        stage1_checkpoint (str, optional): Stage-1 checkpoint or exported
            folder; loaded at construction into the U-Net and captioner MLP.
        stage1_use_ema (bool): Load the EMA weights. Defaults to True.
        allow_random_frozen (bool): Accept frozen networks with random
            weights (tests, tiny models). Defaults to False: a random
            frozen network, or pretrained weights that cannot be found
            locally, fail the build with one message. Every frozen source
            is logged at build and in :meth:`frozen_sources`.
        override_frozen_sources (bool): Accept frozen networks that differ
            from the ones the Stage-1 checkpoint (or a loaded Stage-2
            checkpoint) recorded. Defaults to False (an error).
        feature_keys (Sequence[str]): Backbone outputs fed to the head, high
            to low resolution.
        box_mode (str): 'mask' or 'components'.
        vocabulary (Sequence[str], optional): Training vocabulary; None takes
            it from ``dataset_meta`` (``VocabularyHook`` / ``init_detector``).
        test_vocabulary (Sequence[str], optional): Vocabulary for predict.
        feature_cache (dict, optional): Cached-features mode:
            ``dict(cache_dir=..., max_bytes=4 * 2**30, dtype='fp32',
            memory_bytes=512 * 2**20, flip_features=True)`` runs the frozen
            path once per distinct input and reads its maps from disk (or
            the in-memory LRU) afterwards
            (:class:`CachedFeaturesMixin`). None (default) recomputes.
        train_cfg / test_cfg / data_preprocessor / init_cfg: As in mmdet.
            ``test_cfg`` keys: ``max_per_image`` (100), ``mask_thr`` (0.5),
            ``sem_seg_thr`` (0.5), ``image_score_thr`` (0.5).
    """

    @enforces_frozen_policy
    def __init__(self,
                 backbone: ConfigType,
                 panoptic_head: ConfigType,
                 captioner: OptConfigType = None,
                 caption_text_encoder: OptConfigType = None,
                 cond_mode: str = 'implicit',
                 caption_prob: float = 0.5,
                 test_caption_key: Optional[str] = None,
                 freeze_captioner: bool = True,
                 stage1_checkpoint: Optional[str] = None,
                 stage1_use_ema: bool = True,
                 allow_random_frozen: bool = False,
                 override_frozen_sources: bool = False,
                 feature_keys: Sequence[str] = ('s8', 's16', 's32', 's64'),
                 box_mode: str = 'mask',
                 vocabulary: Optional[Sequence[str]] = None,
                 test_vocabulary: Optional[Sequence[str]] = None,
                 feature_cache: OptConfigType = None,
                 neck: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super(SingleStageDetector, self).__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if cond_mode not in COND_MODES:
            raise ValueError(f'cond_mode must be one of {COND_MODES}, got '
                             f'{cond_mode!r}')
        if box_mode not in BOX_MODES:
            raise ValueError(f'box_mode must be one of {BOX_MODES}, got '
                             f'{box_mode!r}')
        if not 0.0 <= caption_prob <= 1.0:
            raise ValueError(f'caption_prob must be in [0, 1], got '
                             f'{caption_prob}')
        self.cond_mode = cond_mode
        self.caption_prob = float(caption_prob)
        self.test_caption_key = test_caption_key
        self.feature_keys = tuple(feature_keys)
        self.box_mode = box_mode

        self.backbone = MODELS.build(backbone)
        if neck is not None:
            self.neck = MODELS.build(neck)
        if cond_mode in ('implicit', 'caption'):
            if captioner is None:
                raise ValueError(f'cond_mode={cond_mode!r} needs a '
                                 '`captioner` config')
            captioner = dict(captioner)
            # a frozen MLP is held outside state_dict like the CLIP tower
            captioner.setdefault('frozen_mlp', bool(freeze_captioner))
            self.captioner = MODELS.build(captioner)
        else:
            self.captioner = None
        stage1_info = None
        if stage1_checkpoint:
            from imdd_mm.models.pretrainers import load_stage1_into_stage2
            stage1_info = load_stage1_into_stage2(self, stage1_checkpoint,
                                                  stage1_use_ema)
        self.stage1_checkpoint = stage1_checkpoint
        self.override_frozen_sources = bool(override_frozen_sources)
        self.freeze_captioner = bool(freeze_captioner)
        if self.captioner is not None and self.freeze_captioner:
            self.captioner.mlp.requires_grad_(False)
        elif self.captioner is not None and hasattr(self.backbone,
                                                    'cond_grad'):
            # a trainable captioner learns through the frozen U-Net
            self.backbone.cond_grad = True

        head = copy.deepcopy(dict(panoptic_head))
        if head.get('in_channels') is None:
            out_channels = getattr(self.backbone, 'out_channels', None)
            if not isinstance(out_channels, dict):
                raise ValueError('panoptic_head.in_channels is not set and '
                                 'the backbone has no out_channels dict')
            head['in_channels'] = [out_channels[k] for k in self.feature_keys]
        head.update(train_cfg=train_cfg, test_cfg=test_cfg)
        self.panoptic_head = MODELS.build(head)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg or {}

        if caption_text_encoder is not None:
            self.add_frozen_module('caption_text_encoder',
                                   MODELS.build(caption_text_encoder))
        self._cond_cache: Dict[str, Tensor] = {}
        from imdd_mm.models.pretrainers import check_stage2_against_stage1
        check_stage2_against_stage1(
            self, stage1_info,
            self.caption_text_encoder
            if cond_mode in ('caption', 'null') else None,
            self.override_frozen_sources)

        self.vocabulary = (tuple(vocabulary)
                           if vocabulary is not None else None)
        self.test_vocabulary = (tuple(test_vocabulary)
                                if test_vocabulary is not None else None)
        self.eval_dataset_vocabulary: Optional[Tuple[str, ...]] = None
        self._dataset_meta: Optional[dict] = None
        self._init_feature_cache(feature_cache)

    # ------------------------------------------------------------------
    # module plumbing
    @property
    def caption_text_encoder(self) -> nn.Module:
        """Frozen text encoder for captions (defaults to the head's)."""
        enc = self._frozen_dict().get('caption_text_encoder')
        return enc if enc is not None else self.panoptic_head.text_encoder

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)  # moves the frozen networks too
        self._cond_cache = {}
        self._fc_tensors = None  # conversions may swap tensors in place
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if self.captioner is not None and self.freeze_captioner:
            self.captioner.eval()
        return self

    # ------------------------------------------------------------------
    # vocabulary
    @property
    def dataset_meta(self) -> Optional[dict]:
        """Dataset metainfo; assigning it sets the training vocabulary from
        its ``classes`` unless ``vocabulary`` was given in the config."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, meta: Optional[dict]) -> None:
        self._dataset_meta = meta
        if meta and meta.get('classes') and self.vocabulary is None:
            self.vocabulary = tuple(meta['classes'])

    def set_vocabulary(self, names: Sequence[str]) -> None:
        """Replace the prediction vocabulary (names may be unseen in
        training) and activate it now."""
        self.test_vocabulary = tuple(names)
        self.panoptic_head.set_vocabulary(self.test_vocabulary)

    def _activate_vocabulary(self, train: bool) -> Tuple[str, ...]:
        if train:
            names = self.vocabulary
        else:
            names = (self.test_vocabulary or self.eval_dataset_vocabulary
                     or self.vocabulary)
        if names is None:
            names = self.panoptic_head.vocabulary
        if names is None:
            raise RuntimeError(
                'IMDDMask2Former has no vocabulary: set model.vocabulary (or '
                'model.test_vocabulary) in the config, add '
                "dict(type='VocabularyHook') to custom_hooks, or assign "
                'model.dataset_meta = dict(classes=...)')
        self.panoptic_head.set_vocabulary(names)
        return tuple(names)

    # ------------------------------------------------------------------
    # conditioning and features
    def _cond_dim(self) -> int:
        dim = getattr(self.backbone, 'cross_attention_dim', None)
        if dim is not None:
            return int(dim)
        unet = getattr(self.backbone, 'unet', None)
        config = getattr(unet, 'config', None)
        dim = getattr(config, 'cross_attention_dim', None)
        if dim is None:
            dim = getattr(self.backbone, 'cond_dim', None)
        if dim is None:
            raise RuntimeError('cannot infer the conditioning dimension from '
                               'the backbone (backbone.unet.config.'
                               'cross_attention_dim)')
        return int(dim)

    @torch.no_grad()
    def _encode_texts(self, texts: List[str], device) -> Tensor:
        enc = self.caption_text_encoder
        emb = enc.encode(list(texts)).float().to(device)
        if emb.shape[-1] != self._cond_dim():
            raise ValueError(
                f'caption text encoder gives {emb.shape[-1]}-d embeddings '
                f'but the U-Net expects {self._cond_dim()}-d conditioning; '
                'set model.caption_text_encoder to a matching encoder')
        return emb

    def compute_condition(self, batch_inputs: Tensor,
                          batch_data_samples: Optional[SampleList] = None
                          ) -> Tensor:
        """The U-Net conditioning of a batch.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) images in [-1, 1].
            batch_data_samples (list, optional): Samples with ``caption``
                metainfo (used by 'caption' mode).

        Returns:
            Tensor: (B, 1, D) conditioning.
        """
        num = batch_inputs.shape[0]
        device = batch_inputs.device
        if self.cond_mode == 'none':
            return batch_inputs.new_zeros(num, 1, self._cond_dim())
        if self.cond_mode == 'null':
            if 'null' not in self._cond_cache:
                self._cond_cache['null'] = self._encode_texts([''], device)
            null = self._cond_cache['null'].to(device)
            return null[:, None].expand(num, 1, -1).to(batch_inputs.dtype)
        t_imp = self.captioner(batch_inputs)
        if t_imp.dim() == 2:
            t_imp = t_imp[:, None]
        if self.cond_mode == 'implicit':
            return t_imp
        key = 'caption' if self.training else self.test_caption_key
        if key is None:
            return t_imp  # no ground-truth caption at evaluation
        captions = [(s.metainfo.get(key) or '')
                    for s in (batch_data_samples or [])]
        if len(captions) != num:
            captions = [''] * num
        has = torch.tensor([bool(c) for c in captions], device=device)
        if not bool(has.any()):
            return t_imp
        e_t = torch.zeros(num, t_imp.shape[-1], device=device)
        idx = has.nonzero(as_tuple=True)[0]
        e_t[idx] = self._encode_texts([captions[i] for i in idx.tolist()],
                                      device)
        use = has
        if self.training:
            use = has & (torch.rand(num, device=device) < self.caption_prob)
        m = use.to(t_imp.dtype)[:, None, None]
        return m * e_t[:, None].to(t_imp.dtype) + (1 - m) * t_imp

    def extract_feat(self,
                     batch_inputs: Tensor,
                     batch_data_samples: Optional[SampleList] = None
                     ) -> List[Tensor]:
        """Multi-scale diffusion features, high to low resolution.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) in [-1, 1].
            batch_data_samples (list, optional): For caption conditioning.

        Returns:
            list[Tensor]: The maps of ``feature_keys``.
        """
        if self.feature_cache is not None:
            feats = self.cached_backbone_features(batch_inputs,
                                                  batch_data_samples)
        else:
            cond = self.compute_condition(batch_inputs, batch_data_samples)
            feats = self.backbone(batch_inputs, cond)
        feats = [feats[k] for k in self.feature_keys]
        if getattr(self, 'neck', None) is not None:
            feats = list(self.neck(feats))
        return feats

    # ------------------------------------------------------------------
    # modes
    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        self._activate_vocabulary(train=True)
        feats = self.extract_feat(batch_inputs, batch_data_samples)
        return self.panoptic_head.loss(feats, batch_data_samples)

    def _forward(self, batch_inputs: Tensor,
                 batch_data_samples: SampleList) -> Tuple[List[Tensor]]:
        self._activate_vocabulary(train=self.training)
        feats = self.extract_feat(batch_inputs, batch_data_samples)
        return self.panoptic_head.forward(feats, batch_data_samples)

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Predict instances, semantic map, score map and image label.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) in [-1, 1].
            batch_data_samples (list[DetDataSample]): Samples with metainfo.
            rescale (bool): Return results at the original image size.

        Returns:
            list[DetDataSample]: The samples with predictions added.
        """
        cls_list, mask_list = self.predict_logits(batch_inputs,
                                                  batch_data_samples, rescale)
        for sample, cls_logits, mask_logits in zip(batch_data_samples,
                                                   cls_list, mask_list):
            self._postprocess_single(sample, cls_logits, mask_logits)
        self.apply_label_space(batch_data_samples)
        return batch_data_samples

    def predict_logits(self,
                       batch_inputs: Tensor,
                       batch_data_samples: SampleList,
                       rescale: bool = True
                       ) -> Tuple[List[Tensor], List[Tensor]]:
        """Raw per-query outputs before post-processing (used by
        :meth:`predict` and the flip TTA model).

        Args:
            batch_inputs (Tensor): (B, 3, H, W) in [-1, 1].
            batch_data_samples (list[DetDataSample]): Samples with metainfo.
            rescale (bool): Mask logits at ``ori_shape`` (else at
                ``img_shape``, padding removed).

        Returns:
            tuple[list[Tensor], list[Tensor]]: Per sample, class logits
            (Q, K+1) and mask logits (Q, h, w).
        """
        self._activate_vocabulary(train=False)
        feats = self.extract_feat(batch_inputs, batch_data_samples)
        mask_cls, mask_pred = self.panoptic_head.predict(
            feats, batch_data_samples)
        cls_list, mask_list = [], []
        for i, sample in enumerate(batch_data_samples):
            meta = sample.metainfo
            h, w = meta['img_shape'][:2]
            logits = mask_pred[i][:, :h, :w]
            if rescale and 'ori_shape' in meta:
                oh, ow = meta['ori_shape'][:2]
                if (oh, ow) != (h, w):
                    logits = F.interpolate(
                        logits[:, None], size=(oh, ow), mode='bilinear',
                        align_corners=False)[:, 0]
            cls_list.append(mask_cls[i])
            mask_list.append(logits)
        return cls_list, mask_list

    def apply_label_space(self, samples: SampleList) -> None:
        """Map post-processed predictions from vocabulary indices to the
        label space of :meth:`label_space` and record their names as
        ``pred_label_names`` (used by :meth:`predict` and the flip TTA
        model)."""
        label_names, lut = self.label_space(
            self._activate_vocabulary(train=False))
        for sample in samples:
            if lut is not None:
                self._map_labels(
                    sample, lut.to(sample.pred_instances.labels.device))
            sample.set_metainfo(dict(pred_label_names=label_names))

    def label_space(self, names: Sequence[str]
                    ) -> Tuple[Tuple[str, ...], Optional[Tensor]]:
        """Label names of the predictions and the vocabulary -> label
        lookup table (None when the labels are the vocabulary indices).

        With an evaluation dataset (``eval_dataset_vocabulary``, set by
        ``VocabularyHook``) whose classes differ from ``names`` (a
        ``test_vocabulary``), labels are the dataset's category indices
        matched by name; names outside the dataset come after them.
        """
        names = tuple(names)
        classes = self.eval_dataset_vocabulary
        if not classes or tuple(classes) == names:
            return names, None
        lut, label_names, _ = vocabulary_label_map(names, tuple(classes))
        return label_names, torch.tensor(lut, dtype=torch.long)

    @staticmethod
    def _map_labels(sample, lut: Tensor) -> None:
        """Vocabulary indices -> label space, in every prediction."""
        map_prediction_labels(sample, lut)

    def _postprocess_single(self, sample, cls_logits: Tensor,
                            mask_logits: Tensor,
                            score_map: Optional[Tensor] = None) -> None:
        """Fill one sample's predictions.

        Args:
            sample (DetDataSample): Output sample.
            cls_logits (Tensor): (Q, K+1) logits.
            mask_logits (Tensor): (Q, H, W) mask logits at output size.
            score_map (Tensor, optional): (H, W) defect probability to use
                instead of the one of these logits (test-time augmentation
                averages the maps of its views).
        """
        cfg = self.test_cfg
        max_per_image = int(cfg.get('max_per_image', 100))
        mask_thr = float(cfg.get('mask_thr', 0.5))
        sem_thr = float(cfg.get('sem_seg_thr', 0.5))
        image_thr = float(cfg.get('image_score_thr', 0.5))

        num_q, num_k1 = cls_logits.shape
        num_classes = num_k1 - 1
        probs = F.softmax(cls_logits.float(), dim=-1)[:, :-1]  # (Q, K)
        mask_prob = mask_logits.float().sigmoid()  # (Q, H, W)

        # instances (as mmdet's MaskFormerFusionHead.instance_postprocess)
        labels_all = torch.arange(num_classes, device=probs.device)
        labels_all = labels_all.unsqueeze(0).repeat(num_q, 1).flatten()
        k = min(max_per_image, probs.numel())
        scores, top = probs.flatten().topk(k, sorted=True)
        labels = labels_all[top]
        query = top // num_classes
        masks_bin = mask_prob[query] > mask_thr
        mask_scores = (mask_prob[query] * masks_bin).flatten(1).sum(1) / (
            masks_bin.flatten(1).sum(1) + 1e-6)
        scores = scores * mask_scores
        inst = InstanceData()
        if self.box_mode == 'components':
            masks_bin, labels, scores = split_components(
                masks_bin, labels, scores)
        inst.masks = masks_bin
        inst.labels = labels
        inst.scores = scores
        inst.bboxes = masks_to_boxes(masks_bin)
        sample.pred_instances = inst

        # per-pixel maps
        per_class = torch.einsum('qk,qhw->khw', probs, mask_prob)
        if score_map is None:
            score_map = defect_score_map(cls_logits, mask_logits)
        score_map = score_map.to(mask_prob).clamp(0, 1)
        sem = per_class.argmax(0) + 1
        sem[score_map < sem_thr] = 0
        sample.pred_sem_seg = PixelData(sem_seg=sem[None].long())
        sample.pred_score_map = PixelData(data=score_map[None].float())

        # image level
        if scores.numel() > 0:
            best = int(scores.argmax())
            image_score = float(scores[best])
            image_label = int(labels[best]) if image_score >= image_thr \
                else -1
        else:
            image_score, image_label = 0.0, -1
        sample.set_field(image_label, 'pred_image_label', field_type='data')
        sample.set_field(image_score, 'pred_image_score', field_type='data')
