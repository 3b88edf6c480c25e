# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""SimpleNet (Liu et al., "SimpleNet: A Simple Network for Image Anomaly
Detection and Localization", CVPR 2023), written for imdd-mm.

Frozen WideResNet-50 patch features (layer2 + layer3, 3×3 aggregation) ->
a linear feature adaptor -> a discriminator MLP. Training uses normal
images only: anomalous features are synthesised by adding Gaussian noise to
the adapted normal features, and the discriminator is trained with the
truncated L1 loss ``max(0, th - D(normal)) + max(0, th + D(noisy))``.
At test time the patch score is ``-D(adapted feature)``.
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from .base import BaseAnomalyDetector
from .feature_extractors import ResNetPatchEmbedder


@MODELS.register_module()
class SimpleNet(BaseAnomalyDetector):
    """SimpleNet anomaly detector.

    Normalisation: the discriminator is trained to output ``>= th`` on
    normal and ``<= -th`` on synthetic anomalous features, so
    ``sigmoid(-D(x))`` (strictly increasing in the raw score ``-D``) is the
    [0, 1] score; the image score is the maximum of the patch scores.

    Args:
        backbone (dict): :class:`ResNetPatchEmbedder` kwargs. SimpleNet
            uses ``pretrain_embed_dim=embed_dim=1536``.
        backbone_checkpoint (str, optional): Local WRN-50 weights.
        adaptor_layers (int): Linear layers of the adaptor. Defaults to 1.
        hidden_dim (int): Discriminator hidden width. Defaults to 1024.
        discriminator_layers (int): Linear layers of the discriminator
            (``>= 1``). Defaults to 2.
        noise_std (float): Std of the Gaussian anomaly synthesis.
            Defaults to 0.015.
        margin (float): ``th`` of the truncated L1 loss. Defaults to 0.5.
        seed (int, optional): Seed of the noise generator (``None``: global
            RNG).
    """

    frozen_modules = ('backbone', )

    def __init__(self,
                 backbone: ConfigType = dict(
                     arch='wide_resnet50_2',
                     pretrain_embed_dim=1536,
                     embed_dim=1536),
                 backbone_checkpoint: Optional[str] = None,
                 adaptor_layers: int = 1,
                 hidden_dim: int = 1024,
                 discriminator_layers: int = 2,
                 noise_std: float = 0.015,
                 margin: float = 0.5,
                 seed: Optional[int] = None,
                 smooth_sigma: float = 4.0,
                 image_threshold: float = 0.5,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor,
            smooth_sigma=smooth_sigma,
            image_threshold=image_threshold,
            init_cfg=init_cfg)
        backbone = dict(backbone)
        if backbone_checkpoint is not None:
            backbone['checkpoint'] = backbone_checkpoint
        self.backbone = ResNetPatchEmbedder(**backbone)
        dim = self.backbone.embed_dim
        self.adaptor = nn.Sequential(
            *[nn.Linear(dim, dim) for _ in range(adaptor_layers)])
        layers: List[nn.Module] = []
        in_dim = dim
        for _ in range(discriminator_layers - 1):
            layers += [
                nn.Linear(in_dim, hidden_dim),
                nn.BatchNorm1d(hidden_dim),
                nn.LeakyReLU(0.2)
            ]
            in_dim = hidden_dim
        layers.append(nn.Linear(in_dim, 1, bias=False))
        self.discriminator = nn.Sequential(*layers)
        self.noise_std = float(noise_std)
        self.margin = float(margin)
        self._generator = None
        if seed is not None:
            self._generator = torch.Generator(device='cpu').manual_seed(seed)
        self._init_heads()

    def _init_heads(self) -> None:
        """Xavier-normal init of the linear layers (as in SimpleNet)."""
        for m in list(self.adaptor.modules()) + list(
                self.discriminator.modules()):
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def adapted_features(self, inputs: Tensor) -> Tuple[Tensor, tuple]:
        """Adapted patch features (B*h*w, C) and the grid (B, h, w)."""
        with torch.no_grad():
            feats = self.backbone(inputs)
        b, c, h, w = feats.shape
        flat = feats.permute(0, 2, 3, 1).reshape(-1, c)
        return self.adaptor(flat), (b, h, w)

    def loss(self, inputs: Tensor,
             data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        """Truncated L1 loss on normal and noise-synthesised features.

        Returns:
            dict: ``loss_normal``, ``loss_anomalous`` (scalars) and the
            fractions ``acc_normal`` / ``acc_anomalous`` (no grad) of
            features on the right side of 0.
        """
        feats, _ = self.adapted_features(inputs)
        noise = torch.randn(
            feats.shape, generator=self._generator,
            dtype=feats.dtype).to(feats.device) * self.noise_std
        scores = self.discriminator(torch.cat([feats, feats + noise]))[:, 0]
        true_s, fake_s = scores[:feats.shape[0]], scores[feats.shape[0]:]
        loss_normal = F.relu(self.margin - true_s).mean()
        loss_anomalous = F.relu(self.margin + fake_s).mean()
        return dict(
            loss_normal=loss_normal,
            loss_anomalous=loss_anomalous,
            acc_normal=(true_s.detach() > 0).float().mean(),
            acc_anomalous=(fake_s.detach() < 0).float().mean())

    def anomaly_maps(
        self,
        inputs: Tensor,
        data_samples: Optional[List[DetDataSample]] = None
    ) -> Tuple[Tensor, Tensor]:
        feats, (b, h, w) = self.adapted_features(inputs)
        raw = -self.discriminator(feats)[:, 0].view(b, 1, h, w)
        image_scores = raw.flatten(1).max(dim=1).values
        maps = F.interpolate(
            raw, size=inputs.shape[-2:], mode='bilinear',
            align_corners=False)[:, 0]
        return maps, image_scores

    def normalize_scores(self, scores: Tensor) -> Tensor:
        """``sigmoid(-D)``: see the class docstring."""
        return torch.sigmoid(scores)
