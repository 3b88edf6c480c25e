# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly
Detection", CVPR 2022), written for imdd-mm.

Frozen WideResNet-50 layer2 + layer3 features with 3×3 local aggregation,
a memory bank of normal patch features reduced by greedy coreset
subsampling (with random projection), nearest-neighbour patch scores,
an upsampled, Gaussian-smoothed (sigma 4) anomaly map and the paper's
re-weighted maximum as image score.

Fit cost: the exact greedy coreset makes ``coreset_ratio * N`` passes over
the N projected patches (``N = images * (H/8) * (W/8)``: 1024 per image
at 256 px), i.e. it grows with ``N^2``. It logs
progress lines with an ETA, runs on the GPU when the model is there, and
``max_fit_patches`` caps ``N`` by a seeded uniform random subsampling stage
before the coreset (benchmarks/bench_patchcore_fit.py measures time, peak
memory and the effect on P-AUROC; configs/baselines/anomaly/README.md).
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from .base import BaseAnomalyDetector
from .feature_extractors import ResNetPatchEmbedder
from .memory_bank import (greedy_coreset, nearest_neighbors,
                          subsample_patches)


@MODELS.register_module()
class PatchCore(BaseAnomalyDetector):
    """PatchCore anomaly detector.

    Fitting: ``train_step`` accumulates patch features of the normal
    training images; ``finalize_fit`` (called by ``MemoryBankFitHook`` or
    lazily by ``predict``) keeps ``coreset_ratio`` of them by greedy
    k-center selection and calibrates the score normalisation.

    Normalisation: ``sigmoid((d - score_center) / score_scale)`` where ``d``
    is the nearest-neighbour distance; ``score_center`` is the 99th
    percentile and ``score_scale`` the standard deviation of the
    leave-one-out nearest-neighbour distances of the fitted normal patches
    to the memory bank (a patch never matches itself).

    Args:
        backbone (dict): :class:`ResNetPatchEmbedder` kwargs (``arch``,
            ``checkpoint`` = local torchvision weights, ``layers``, ...).
        backbone_checkpoint (str, optional): Shortcut for
            ``backbone['checkpoint']``.
        coreset_ratio (float): Fraction of patches kept (0.1 in PatchCore
            for MVTec AD; 0.01 for the fast variant).
        projection_dim (int, optional): Random-projection size for the
            coreset distances. Defaults to 128.
        num_neighbors (int): ``b`` of the image-score re-weighting; 1
            disables it. Defaults to 9.
        seed (int): Coreset seed. Defaults to 0.
        max_fit_patches (int, optional): First subsampling stage: at most
            this many training patches (seeded uniform random subset) enter
            the coreset selection. ``None`` (PatchCore) keeps all.
        fit_progress (bool): Log coreset progress lines with an ETA.
            Defaults to True.
        smooth_sigma (float): Map smoothing sigma. Defaults to 4.
        image_threshold (float): Threshold on the normalised image score.
        data_preprocessor (dict, optional): Defaults to [-1, 1] mapping.
        init_cfg (dict, optional): Unused (weights are frozen).
    """

    frozen_modules = ('backbone', )

    def __init__(self,
                 backbone: ConfigType = dict(arch='wide_resnet50_2'),
                 backbone_checkpoint: Optional[str] = None,
                 coreset_ratio: float = 0.1,
                 projection_dim: Optional[int] = 128,
                 num_neighbors: int = 9,
                 seed: int = 0,
                 max_fit_patches: Optional[int] = None,
                 fit_progress: bool = True,
                 smooth_sigma: float = 4.0,
                 image_threshold: float = 0.5,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor,
            smooth_sigma=smooth_sigma,
            image_threshold=image_threshold,
            init_cfg=init_cfg)
        if not 0 < coreset_ratio <= 1:
            raise ValueError(f'coreset_ratio must be in (0, 1], got '
                             f'{coreset_ratio}')
        backbone = dict(backbone)
        if backbone_checkpoint is not None:
            backbone['checkpoint'] = backbone_checkpoint
        self.backbone = ResNetPatchEmbedder(**backbone)
        self.coreset_ratio = float(coreset_ratio)
        self.projection_dim = projection_dim
        self.num_neighbors = int(num_neighbors)
        self.seed = int(seed)
        if max_fit_patches is not None and int(max_fit_patches) < 1:
            raise ValueError('max_fit_patches must be >= 1 or None, got '
                             f'{max_fit_patches}')
        self.max_fit_patches = max_fit_patches
        self.fit_progress = bool(fit_progress)
        dim = self.backbone.embed_dim
        self.register_buffer('memory_bank', torch.zeros(0, dim))
        self.register_buffer('score_center', torch.tensor(0.0))
        self.register_buffer('score_scale', torch.tensor(1.0))
        self._pending: List[Tensor] = []

    # ------------------------------------------------------------------ #
    # fitting
    # ------------------------------------------------------------------ #
    @torch.no_grad()
    def extract(self, inputs: Tensor) -> Tensor:
        """Patch features (B, C, h, w) of ``inputs`` (B, 3, H, W)."""
        return self.backbone(inputs)

    def train_step(self, data, optim_wrapper=None) -> Dict[str, Tensor]:
        """Add the batch's patch features to the pending memory."""
        data = self.data_preprocessor(data, True)
        feats = self.extract(data['inputs'])
        flat = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
        self._pending.append(flat)
        total = sum(p.shape[0] for p in self._pending)
        return dict(num_patches=torch.tensor(float(total)))

    @torch.no_grad()
    def finalize_fit(self) -> None:
        """Coreset-subsample the pending features into ``memory_bank`` and
        calibrate the normalisation. No-op when nothing is pending."""
        if not self._pending:
            return
        feats = torch.cat(self._pending).float()
        self._pending = []
        feats = subsample_patches(feats, self.max_fit_patches, self.seed)
        num = max(1, int(round(feats.shape[0] * self.coreset_ratio)))
        idx = greedy_coreset(
            feats, num, projection_dim=self.projection_dim, seed=self.seed,
            progress=self.fit_progress)
        bank = feats[idx].contiguous()
        self.memory_bank = bank.to(self.score_center.device)
        # leave-one-out distances of the fitted patches to the bank
        gen = torch.Generator(device='cpu').manual_seed(self.seed)
        sample = torch.randperm(feats.shape[0], generator=gen)[:20000]
        sample = sample.to(feats.device)
        dists, nn_idx = nearest_neighbors(feats[sample], bank, k=2)
        position = torch.full((feats.shape[0], ), -1, dtype=torch.long,
                              device=feats.device)
        position[idx] = torch.arange(num, device=feats.device)
        is_self = nn_idx[:, 0] == position[sample]
        loo = torch.where(is_self, dists[:, -1], dists[:, 0])
        if num == 1:
            loo = dists[:, 0]
        center = torch.quantile(loo, 0.99)
        scale = loo.std().clamp(min=1e-6) if loo.numel() > 1 else \
            loo.new_tensor(1.0)
        self.score_center.fill_(float(center))
        self.score_scale.fill_(float(max(float(scale), 1e-3 * float(
            center.abs()), 1e-6)))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + 'memory_bank'
        if key in state_dict:
            self.memory_bank = torch.empty_like(
                state_dict[key], device=self.memory_bank.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ #
    # scoring
    # ------------------------------------------------------------------ #
    def normalize_scores(self, scores: Tensor) -> Tensor:
        return torch.sigmoid((scores - self.score_center) / self.score_scale)

    def patch_scores(self, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        """Raw nearest-neighbour distances (B, h, w) and the re-weighted
        raw image scores (B,)."""
        self.finalize_fit()
        if self.memory_bank.shape[0] == 0:
            raise RuntimeError(
                'PatchCore has an empty memory bank: fit it first '
                '(tools/train.py with MemoryBankFitHook) or load a '
                'checkpoint')
        feats = self.extract(inputs)
        b, c, h, w = feats.shape
        flat = feats.permute(0, 2, 3, 1).reshape(-1, c)
        dist, idx = nearest_neighbors(flat, self.memory_bank, k=1)
        dist = dist[:, 0].view(b, h * w)
        idx = idx[:, 0].view(b, h * w)
        flat = flat.view(b, h * w, c)
        image_scores = []
        for i in range(b):
            j = int(torch.argmax(dist[i]))
            s_star = dist[i, j]
            if self.num_neighbors > 1 and self.memory_bank.shape[0] > 1:
                m_star = self.memory_bank[idx[i, j]][None]
                _, nb = nearest_neighbors(m_star, self.memory_bank,
                                          k=self.num_neighbors)
                d_nb = torch.cdist(flat[i, j][None].float(),
                                   self.memory_bank[nb[0]].float())[0]
                # N_b(m*) contains m* itself (first), so d_nb[0] == s*
                weight = 1.0 - torch.softmax(d_nb, dim=0)[0]
                s_star = weight * s_star
            image_scores.append(s_star)
        return dist.view(b, h, w), torch.stack(image_scores)

    def anomaly_maps(
        self,
        inputs: Tensor,
        data_samples: Optional[List[DetDataSample]] = None
    ) -> Tuple[Tensor, Tensor]:
        raw_maps, raw_image = self.patch_scores(inputs)
        maps = F.interpolate(
            raw_maps[:, None], size=inputs.shape[-2:], mode='bilinear',
            align_corners=False)[:, 0]
        return maps, raw_image
