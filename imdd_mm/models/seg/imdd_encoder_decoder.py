# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""MMSegmentation encoder-decoder over the conditioned diffusion backbone."""
from typing import List, Optional, Sequence

import torch
from mmdet.registry import MODELS as DET_MODELS
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS as SEG_MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor

from imdd_mm.utils.provenance import enforces_frozen_policy
from ..backbones.frozen import FrozenModulesMixin

SEG_COND_MODES = ('implicit', 'null', 'none')


def _build(cfg: dict):
    """Build from mmseg's registry, falling back to mmdet's (where imdd-mm's
    backbone, captioner and text encoders are registered)."""
    type_name = cfg.get('type') if isinstance(cfg, dict) else None
    if isinstance(type_name, str) and '.' not in type_name and \
            SEG_MODELS.get(type_name) is None:
        return DET_MODELS.build(cfg)
    return SEG_MODELS.build(cfg)


@SEG_MODELS.register_module()
class IMDDEncoderDecoder(FrozenModulesMixin, EncoderDecoder):
    """mmseg ``EncoderDecoder`` whose backbone is ``IMDDDiffusionBackbone``
    conditioned by the implicit captioner (or the null / zero conditioning of
    the Table 7 ablations).

    Args:
        backbone (dict): ``IMDDDiffusionBackbone`` config.
        decode_head (dict): ``OVMask2FormerSegHead`` config; ``in_channels``
            defaults to the backbone's channels of ``feature_keys``.
        captioner (dict, optional): ``ImplicitCaptioner`` config ('implicit').
        cond_mode (str): 'implicit' (default), 'null' or 'none'.
        null_text_encoder (dict, optional): Text encoder for the empty
            prompt ('null'); defaults to the decode head's.
        stage1_checkpoint (str, optional): Loaded at construction.
        freeze_captioner (bool): Freeze the captioner MLP. Defaults to True.
            When False, the backbone's ``cond_grad`` is switched on so the
            MLP learns through the frozen U-Net.
        allow_random_frozen (bool): Accept random frozen networks (tests,
            tiny models); see ``IMDDMask2Former``. Defaults to False.
        override_frozen_sources (bool): Accept frozen networks differing
            from the Stage-1 checkpoint's. Defaults to False.
        feature_keys (Sequence[str]): Backbone outputs used.
        Other args: as mmseg's ``EncoderDecoder``.
    """

    @enforces_frozen_policy
    def __init__(self,
                 backbone: ConfigType,
                 decode_head: ConfigType,
                 captioner: OptConfigType = None,
                 cond_mode: str = 'implicit',
                 null_text_encoder: OptConfigType = None,
                 stage1_checkpoint: Optional[str] = None,
                 stage1_use_ema: bool = True,
                 freeze_captioner: bool = True,
                 allow_random_frozen: bool = False,
                 override_frozen_sources: bool = False,
                 feature_keys: Sequence[str] = ('s8', 's16', 's32', 's64'),
                 neck: OptConfigType = None,
                 auxiliary_head: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        if cond_mode not in SEG_COND_MODES:
            raise ValueError(f'cond_mode must be one of {SEG_COND_MODES}, '
                             f'got {cond_mode!r}')
        # EncoderDecoder.__init__ builds through mmseg's registry only
        super(EncoderDecoder, self).__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.cond_mode = cond_mode
        self.feature_keys = tuple(feature_keys)
        self.backbone = _build(backbone)
        if neck is not None:
            self.neck = _build(neck)
        if cond_mode == 'implicit' and captioner is not None:
            captioner = dict(captioner)
            captioner.setdefault('frozen_mlp', bool(freeze_captioner))
            self.captioner = _build(captioner)
        else:
            self.captioner = None
        if cond_mode == 'implicit' and self.captioner is None:
            raise ValueError("cond_mode='implicit' needs a `captioner`")
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
        elif self.captioner is not None:
            # a trainable captioner learns through the frozen U-Net
            self.backbone.cond_grad = True
        head = dict(decode_head)
        if head.get('in_channels') is None:
            head['in_channels'] = [
                self.backbone.out_channels[k] for k in self.feature_keys
            ]
        self._init_decode_head(head)
        self._init_auxiliary_head(auxiliary_head)
        if null_text_encoder is not None:
            self.add_frozen_module('null_text_encoder',
                                   _build(null_text_encoder))
        self._null: Optional[Tensor] = None
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        from imdd_mm.models.pretrainers import check_stage2_against_stage1
        check_stage2_against_stage1(
            self, stage1_info,
            self._null_encoder() if cond_mode == 'null' else None,
            self.override_frozen_sources)

    def _null_encoder(self):
        """The frozen text encoder of the empty prompt ('null')."""
        return self._frozen_dict().get('null_text_encoder') or \
            self.decode_head.text_encoder

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)  # moves the frozen networks too
        self._null = None
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if self.captioner is not None and self.freeze_captioner:
            self.captioner.eval()
        return self

    def set_vocabulary(self, names: Sequence[str]) -> None:
        """Replace the class names (label order) of the decode head."""
        self.decode_head.set_vocabulary(names)
        self.num_classes = self.decode_head.num_classes
        self.out_channels = self.decode_head.out_channels

    def _cond_dim(self) -> int:
        return int(self.backbone.unet.config.cross_attention_dim)

    def compute_condition(self, inputs: Tensor) -> Tensor:
        """(B, 1, D) conditioning of a batch of images in [-1, 1]."""
        num = inputs.shape[0]
        if self.cond_mode == 'none':
            return inputs.new_zeros(num, 1, self._cond_dim())
        if self.cond_mode == 'null':
            if self._null is None:
                enc = self._null_encoder()
                with torch.no_grad():
                    self._null = enc.encode(['']).float().to(inputs.device)
            return self._null[:, None].expand(num, 1, -1).to(inputs.dtype)
        cond = self.captioner(inputs)
        return cond[:, None] if cond.dim() == 2 else cond

    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        """Diffusion features of ``feature_keys``, high to low resolution."""
        feats = self.backbone(inputs, self.compute_condition(inputs))
        feats = [feats[k] for k in self.feature_keys]
        if self.with_neck:
            feats = list(self.neck(feats))
        return feats
