# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""DMAD-PPDM-style anomaly detection: pre-deformation + Reverse
Distillation (Liu et al., "Diversity-Measurable Anomaly Detection", CVPR
2023, arXiv:2303.05047; the code's ``DMAD-PPDM`` variant behind the paper's
MVTec AD numbers), written for imdd-mm (clean-room).

Sources: the abstract and the official code, github.com/FlappyPeggy/DMAD
(``DMAD-PPDM/Train_mvtec.py``, ``resnet.py``, ``test.py``), and Reverse
Distillation's code, github.com/hq-deng/RD4AD, both read for facts only;
configs/baselines/anomaly/README.md ("Faithfulness") lists what comes from
where. "-style" because the full paper text was not reachable.

Pipeline (as the official code):

1. :class:`~.pre_deformation.PreDeformation` warps the ImageNet-normalised
   image by a bounded coarse and a fine offset field (and predicts the two
   inverse fields);
2. a frozen ImageNet ResNet teacher (WRN-50 in the paper's setting) gives
   layer1-3 features of the deformed image;
3. RD's one-class bottleneck (:class:`~.reverse_distillation.
   OneClassBottleneck`; with ``use_vq`` a 200-code VQ on layer 3, the
   official image-level mode) and reverse-ResNet student decoder
   (:class:`~.reverse_distillation.ReverseResNetDecoder`) reconstruct the
   three feature levels.

Loss (all weights 1, as the official code): ``sum_l mean_b (1 - cos)`` of
each level's whole flattened feature map (RD's loss), + mean magnitudes of
the coarse and the fine field, + 3x3 smoothness of all four fields, +
``inverse_weight`` x MSE between the input and the deformed image warped
back by the inverse fields, + the VQ loss.

Score: RD's map ``sum_l (1 - cos)`` (channel cosine per position, each
level bilinearly upsampled to the input size) warped back by the inverse
fields, plus ``deform_weight`` (0.05, official) x the inverse deformation
magnitude. Ours: each term is divided by its fixed bound (``2 L`` and the
largest offset norm) instead of the official min-max over the test set (a
per-pixel score may not depend on the other test images here), so the
0.05 weighs differently scaled terms; the official script's choice of the
larger AUROC with or without the deformation term (made on test labels) is
not reproduced. The image score is the maximum of the smoothed RD term
plus ``deform_weight`` x the maximum of the smoothed deformation term.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import OptConfigType, OptMultiConfig
from .base import (IMAGENET_MEAN, IMAGENET_STD, BaseAnomalyDetector,
                   gaussian_blur, renormalize)
from .feature_extractors import ResNetPatchEmbedder
from .pre_deformation import FIELDS, PreDeformation, smoothness
from .reverse_distillation import OneClassBottleneck, ReverseResNetDecoder

TEACHER_LAYERS = ('layer1', 'layer2', 'layer3')


def cosine_distance_map(teacher: Sequence[Tensor], student: Sequence[Tensor],
                        size: Tuple[int, int]) -> Tensor:
    """RD's anomaly map: ``sum_l 1 - cos(t_l, s_l)`` over channels at each
    position, each level bilinearly resized (``align_corners=True``) to
    ``size``.

    Args:
        teacher, student: Matching lists of (B, C_l, h_l, w_l) features.
        size: (H, W) of the map.

    Returns:
        Tensor: (B, H, W) in [0, 2 L].
    """
    out = 0
    for t, s in zip(teacher, student):
        d = 1 - F.cosine_similarity(t, s, dim=1)[:, None]
        out = out + F.interpolate(d, size=size, mode='bilinear',
                                  align_corners=True)[:, 0]
    return out


def distillation_loss(teacher: Sequence[Tensor],
                      student: Sequence[Tensor]) -> Tensor:
    """RD's training loss: ``sum_l mean_b (1 - cos)`` between each level's
    whole feature maps flattened per image."""
    loss = 0
    for t, s in zip(teacher, student):
        loss = loss + (1 - F.cosine_similarity(
            t.flatten(1), s.flatten(1), dim=1)).mean()
    return loss


@MODELS.register_module()
class ReverseDistillationPPDM(BaseAnomalyDetector):
    """DMAD-PPDM-style detector (see the module docstring).

    Normalisation: the raw map is ``rd / (2 L) + deform_weight * m / B``
    (``m`` the deformation magnitude, ``B`` its bound), in ``[0, 1 +
    deform_weight]``; ``normalize_scores`` divides by ``1 +
    deform_weight`` (fixed, increasing).

    Args:
        teacher_arch (str): torchvision ResNet / WideResNet name. Defaults
            to ``'wide_resnet50_2'``.
        teacher_checkpoint (str, optional): Local torchvision state dict of
            the teacher (ImageNet weights). ``None`` builds a random teacher,
            refused unless ``allow_random_frozen=True``.
        teacher_seed (int, optional): Seed of a random teacher (``None``:
            the global RNG), recorded in :meth:`frozen_sources`.
        allow_random_frozen (bool): Accept a random teacher (tests, offline
            measurements; logged as a warning). Defaults to False.
        override_frozen_sources (bool): Load a checkpoint trained with
            another teacher (``FrozenSourcesHook``). Defaults to False.
        decoder_layers (Sequence[int]): Student blocks per stage. Defaults
            to ``(3, 4, 6)`` (RD's WRN-50 decoder).
        bottleneck_blocks (int): Residual blocks of the bottleneck.
            Defaults to 3.
        use_vq (bool): VQ on layer 3 in the bottleneck (the official
            image-level mode). Defaults to False (the official pixel-level
            checkpoints).
        num_codes (int): VQ codebook size. Defaults to 200.
        commitment (float): VQ commitment weight. Defaults to 0.25.
        offset_channels (int): Width of the pre-deformation network.
            Defaults to 64.
        field_strides (Sequence[int]): Coarse and fine field resolution
            divisors. Defaults to (8, 2).
        max_offsets (Sequence[float]): Coarse and fine offset bounds
            (normalised units). Defaults to 8 and 3 px at 256 px.
        inverse_weight (float): Weight of the inverse-warp MSE (the
            official ``gamma``). Defaults to 1.
        deform_weight (float): Weight of the deformation term in the score.
            Defaults to 0.05.
        smooth_sigma (float): Gaussian sigma of the map (input pixels).
            Defaults to 4 (official).
    """

    frozen_modules = ('teacher', )

    def __init__(self,
                 teacher_arch: str = 'wide_resnet50_2',
                 teacher_checkpoint: Optional[str] = None,
                 teacher_seed: Optional[int] = None,
                 allow_random_frozen: bool = False,
                 override_frozen_sources: bool = False,
                 decoder_layers: Sequence[int] = (3, 4, 6),
                 bottleneck_blocks: int = 3,
                 use_vq: bool = False,
                 num_codes: int = 200,
                 commitment: float = 0.25,
                 offset_channels: int = 64,
                 field_strides: Sequence[int] = (8, 2),
                 max_offsets: Sequence[float] = (2 * 8 / 256, 2 * 3 / 256),
                 inverse_weight: float = 1.0,
                 deform_weight: float = 0.05,
                 smooth_sigma: float = 4.0,
                 image_threshold: float = 0.5,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor,
            smooth_sigma=smooth_sigma,
            image_threshold=image_threshold,
            init_cfg=init_cfg)
        from imdd_mm.models.backbones.frozen import seeded_init
        from imdd_mm.utils.provenance import enforce_frozen_policy
        self.teacher_arch = str(teacher_arch)
        self.teacher_checkpoint = teacher_checkpoint
        self.teacher_seed = teacher_seed
        self.allow_random_frozen = bool(allow_random_frozen)
        self.override_frozen_sources = bool(override_frozen_sources)
        with seeded_init(None if teacher_checkpoint else teacher_seed):
            self.teacher = ResNetPatchEmbedder(
                arch=self.teacher_arch, checkpoint=teacher_checkpoint,
                layers=TEACHER_LAYERS, patch_size=1)
        enforce_frozen_policy(type(self).__name__, self.frozen_sources(),
                              self.allow_random_frozen)
        channels, bottleneck, width = self._teacher_shape()
        self.deformation = PreDeformation(
            3, offset_channels, field_strides, max_offsets)
        self.bottleneck = OneClassBottleneck(
            channels, bottleneck, bottleneck_blocks, width,
            num_codes=int(num_codes) if use_vq else None,
            commitment=commitment)
        self.decoder = ReverseResNetDecoder(channels, bottleneck,
                                            decoder_layers, width)
        self.use_vq = bool(use_vq)
        self.inverse_weight = float(inverse_weight)
        self.deform_weight = float(deform_weight)

    def _teacher_shape(self) -> Tuple[List[int], bool, int]:
        """Teacher channels (c1, c2, c3), block type and width factor."""
        from torchvision.models.resnet import Bottleneck
        stages = [self.teacher.stages[n] for n in TEACHER_LAYERS]
        bottleneck = isinstance(stages[0][-1], Bottleneck)
        last = 'conv3' if bottleneck else 'conv2'
        channels = [getattr(s[-1], last).out_channels for s in stages]
        width = 64
        if bottleneck:  # width = planes * base_width / 64, planes = c1 / 4
            width = stages[0][0].conv2.out_channels * 64 // (channels[0] // 4)
        return channels, bottleneck, width

    def frozen_sources(self) -> Dict[str, dict]:
        """``{'teacher': record}`` (:mod:`imdd_mm.utils.provenance`)."""
        from imdd_mm.utils.provenance import file_sha256, random_source
        if self.teacher_checkpoint:
            path = osp.abspath(osp.expanduser(str(self.teacher_checkpoint)))
            return dict(teacher=dict(kind='file', path=path,
                                     sha256=file_sha256(path),
                                     model=self.teacher_arch))
        return dict(teacher=random_source(
            self.teacher_seed, init='torchvision', model=self.teacher_arch))

    # ------------------------------------------------------------------ #
    def forward_features(self, inputs: Tensor) -> Dict[str, object]:
        """Fields, deformed image, teacher / student features, VQ loss.

        Args:
            inputs (Tensor): (B, 3, H, W) in [-1, 1], H and W divisible by
                32.
        """
        h, w = inputs.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(f'DMAD-PPDM-style needs inputs divisible by 32 '
                             f'(stride of the RD bottleneck), got {(h, w)}')
        x = renormalize(inputs, IMAGENET_MEAN, IMAGENET_STD)
        out = self.deformation(x)
        # no torch.no_grad(): the teacher's weights are frozen, but the
        # distillation loss reaches the pre-deformation net through it (as
        # in the official code)
        feats = self.teacher.stage_features(out['deformed'], normalized=True)
        teacher = [feats[n] for n in TEACHER_LAYERS]
        z, loss_vq = self.bottleneck(teacher)
        out.update(image=x, teacher=teacher, student=self.decoder(z),
                   loss_vq=loss_vq)
        return out

    def loss(self, inputs: Tensor,
             data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        out = self.forward_features(inputs)
        restored = PreDeformation.undo(out['deformed'], out)
        losses = dict(
            loss_rd=distillation_loss(out['teacher'], out['student']),
            loss_offset=sum(out[n].norm(dim=1).mean()
                            for n in ('coarse', 'fine')),
            loss_smooth=sum(smoothness(out[n]) for n in FIELDS),
            loss_inverse=self.inverse_weight * F.mse_loss(
                restored, out['image']))
        if self.use_vq:
            losses['loss_vq'] = out['loss_vq']
        return losses

    def score_terms(self, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        """The two score terms at the input geometry, each divided by its
        bound: RD's map warped back (B, H, W) and the deformation magnitude
        (B, H, W), both in [0, 1]."""
        with torch.no_grad():
            out = self.forward_features(inputs)
        size = inputs.shape[-2:]
        rd = cosine_distance_map(out['teacher'], out['student'], size)
        rd = PreDeformation.undo(rd[:, None], out)[:, 0]
        mag = PreDeformation.deformation_magnitude(out)
        return (rd / (2.0 * len(TEACHER_LAYERS)),
                mag / self.deformation.magnitude_bound)

    def anomaly_maps(
        self,
        inputs: Tensor,
        data_samples: Optional[List[DetDataSample]] = None
    ) -> Tuple[Tensor, Tensor]:
        rd, mag = self.score_terms(inputs)
        maps = rd + self.deform_weight * mag
        image = gaussian_blur(rd, self.smooth_sigma).flatten(1).amax(1) + \
            self.deform_weight * gaussian_blur(
                mag, self.smooth_sigma).flatten(1).amax(1)
        return maps, image

    def normalize_scores(self, scores: Tensor) -> Tensor:
        return (scores / (1.0 + self.deform_weight)).clamp(0.0, 1.0)
