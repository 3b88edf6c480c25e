# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Training-free zero-shot mutual scoring in the spirit of MuSc (Li et al.,
"MuSc: Zero-Shot Industrial Anomaly Classification and Segmentation with
Mutual Scoring of the Unlabeled Images", ICLR 2024), written for imdd-mm.

Normal patches of unlabeled test images find close matches in the *other*
test images; anomalous patches do not. For every image ``i``:

1. patch tokens of several ViT blocks, each aggregated over ``r × r``
   neighbourhoods for every ``r`` in ``aggregation_degrees`` (LNAMD);
2. for every other image ``j``: ``s_ij(p) = min_q ||f_i(p) - f_j(q)||``;
3. interval averaging: the mean of the smallest ``interval`` fraction of
   ``{s_ij(p)}_j`` (robust to the other images' own anomalies);
4. mean over blocks and degrees.

The "set" is the test batch: configure the test dataloader's batch size as
the subset size (MuSc scores whole categories; its ``divide_num`` splits
them). No training, no labels.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from .base import BaseAnomalyDetector
from .feature_extractors import ViTPatchExtractor


def mutual_scores(feats: Tensor,
                  interval: float = 0.3,
                  reference: Optional[Tensor] = None) -> Tensor:
    """Mutual patch scores of a set of images.

    Args:
        feats (Tensor): (B, N, C) patch features of the scored images.
        interval (float): Fraction (0, 1] of the other images whose smallest
            distances are averaged.
        reference (Tensor, optional): (R, N, C) features of extra unlabeled
            images that count as "other images" for every scored image
            (used for a too-small last batch).

    Returns:
        Tensor: (B, N) scores; permutation-equivariant in B.
    """
    b, n, c = feats.shape
    num_ref = 0 if reference is None else reference.shape[0]
    if b - 1 + num_ref < 1:
        raise ValueError('mutual scoring needs at least 2 images per set '
                         '(set the test batch size >= 2)')
    k = max(1, int(round(interval * (b - 1 + num_ref))))
    pool = feats if reference is None else torch.cat([feats, reference])
    flat = pool.reshape(-1, c).float()
    total = pool.shape[0]
    out = feats.new_empty(b, n, dtype=torch.float32)
    others = torch.ones(total, dtype=torch.bool, device=feats.device)
    for i in range(b):
        d = torch.cdist(flat[i * n:(i + 1) * n], flat)  # (N, T*N)
        d = d.view(n, total, n).min(dim=2).values  # (N, T)
        others.fill_(True)
        others[i] = False
        d = d[:, others]
        out[i] = torch.topk(d, k, dim=1, largest=False).values.mean(dim=1)
    return out


@MODELS.register_module()
class MutualScoring(BaseAnomalyDetector):
    """MuSc-style zero-shot mutual scoring of the images of a test batch.

    Normalisation: per-set min-max, ``(s - min) / (max - min)`` over all
    patch scores of the batch (MuSc normalises over the scored set); the
    image score is the maximum of the normalised patch map. A single-image
    batch is scored against the previous batch and uses its range.

    Args:
        backbone (dict): :class:`ViTPatchExtractor` kwargs (``source`` =
            ``'torchvision'``/``'open_clip'``, ``arch``, ``checkpoint``,
            ``layers``, ``model_cfg``).
        backbone_checkpoint (str, optional): Local ViT weights.
        aggregation_degrees (Sequence[int]): Neighbourhood sizes ``r``.
            Defaults to (1, 3, 5).
        interval (float): Interval-averaging fraction. Defaults to 0.3.
    """

    frozen_modules = ('backbone', )

    def __init__(self,
                 backbone: ConfigType = dict(
                     source='torchvision', arch='vit_b_16',
                     layers=(2, 5, 8, 11)),
                 backbone_checkpoint: Optional[str] = None,
                 aggregation_degrees: Sequence[int] = (1, 3, 5),
                 interval: float = 0.3,
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
        self.backbone = ViTPatchExtractor(**backbone)
        self.aggregation_degrees = tuple(int(r) for r in aggregation_degrees)
        if not 0 < interval <= 1:
            raise ValueError(f'interval must be in (0, 1], got {interval}')
        self.interval = float(interval)
        # features and score range of the last scored set (not saved)
        self._reference: Optional[List[Tensor]] = None
        self._range: Optional[Tuple[Tensor, Tensor]] = None

    @torch.no_grad()
    def raw_scores(self, inputs: Tensor) -> Tensor:
        """Raw mutual scores (B, h, w) of the images of ``inputs``.

        A batch of one image (e.g. the last batch of a test set) is scored
        against the previous batch's images, kept as reference.
        """
        tokens, (h, w) = self.backbone(inputs)
        feats = []
        for tok in tokens:
            b, n, c = tok.shape
            grid = tok.transpose(1, 2).reshape(b, c, h, w)
            for r in self.aggregation_degrees:
                agg = grid if r <= 1 else F.avg_pool2d(
                    grid, r, stride=1, padding=r // 2,
                    count_include_pad=False)
                feats.append(agg.flatten(2).transpose(1, 2))
        use_ref = inputs.shape[0] < 2 and self._reference is not None
        total = 0
        for j, f in enumerate(feats):
            ref = self._reference[j] if use_ref else None
            total = total + mutual_scores(f, self.interval, ref)
        if inputs.shape[0] >= 2:
            self._reference = [f.detach() for f in feats]
        return (total / len(feats)).view(-1, h, w)

    def anomaly_maps(
        self,
        inputs: Tensor,
        data_samples: Optional[List[DetDataSample]] = None
    ) -> Tuple[Tensor, Tensor]:
        small = inputs.shape[0] < 2 and self._reference is not None
        raw = self.raw_scores(inputs)
        if small:  # too few images for its own statistics
            lo, hi = self._range
        else:
            lo, hi = raw.min(), raw.max()
            self._range = (lo, hi)
        norm = ((raw - lo) / (hi - lo).clamp(min=1e-12)).clamp(0, 1)
        image_scores = norm.flatten(1).max(dim=1).values
        maps = F.interpolate(
            norm[:, None], size=inputs.shape[-2:], mode='bilinear',
            align_corners=False)[:, 0]
        return maps, image_scores
