# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Training-free zero-shot mutual scoring in the spirit of MuSc (Li et al.,
"MuSc: Zero-Shot Industrial Anomaly Classification and Segmentation with
Mutual Scoring of the Unlabeled Images", ICLR 2024), written for imdd-mm.

Normal patches of unlabeled test images find close matches in the *other*
test images; anomalous patches do not. The scored set is a category's
**whole test split** (as in MuSc), never a batch:

1. patch tokens of several ViT blocks, each image's token map
   layer-normalised over (C, h, w), aggregated over ``r × r``
   neighbourhoods for every ``r`` in ``aggregation_degrees`` and
   L2-normalised per patch (LNAMD);
2. for every other image ``j`` of the set:
   ``s_ij(p) = min_q ||f_i(p) - f_j(q)||``;
3. interval averaging: the mean of the smallest ``interval`` fraction of
   ``{s_ij(p)}_j`` (robust to the other images' own anomalies);
4. mean over blocks and degrees;
5. image level: the maximum of the patch map, re-scored RsCIN-style over
   the set (see :func:`rescore_images`).

Images are grouped into sets by their ``metainfo['object_name']`` (one
category per set, also in a pooled multi-category run).
The Runner feeds the set through :class:`SetScoringHook` (before the test /
val epoch it calls :meth:`MutualScoring.score_set` with the evaluated
dataloader); ``predict`` then only looks the scores up. Features are
extracted one image at a time and the set is put in a canonical order
(sorted ``img_path``), so the scores do not depend on batch size, sampler
order or the number of GPUs (ranks all-gather their features).
"""
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from .base import BaseAnomalyDetector
from .feature_extractors import ViTPatchExtractor


def mutual_scores(feats: Tensor, interval: float = 0.3) -> Tensor:
    """Mutual patch scores of a set of images.

    Args:
        feats (Tensor): (M, N, C) patch features of the M images of the set.
        interval (float): Fraction (0, 1] of the other images whose smallest
            distances are averaged.

    Returns:
        Tensor: (M, N) scores; permutation-equivariant in M.
    """
    m, n, c = feats.shape
    if m < 2:
        raise ValueError('mutual scoring needs a set of at least 2 images')
    k = max(1, int(round(interval * (m - 1))))
    flat = feats.reshape(-1, c).float()
    out = feats.new_empty(m, n, dtype=torch.float32)
    others = torch.ones(m, dtype=torch.bool, device=feats.device)
    for i in range(m):
        d = torch.cdist(flat[i * n:(i + 1) * n], flat)  # (N, M*N)
        d = d.view(n, m, n).min(dim=2).values  # (N, M)
        others.fill_(True)
        others[i] = False
        d = d[:, others]
        out[i] = torch.topk(d, k, dim=1, largest=False).values.mean(dim=1)
    return out


def rescore_images(scores: Tensor, feats: Tensor,
                   windows: Sequence[int] = (2, 3)) -> Tensor:
    """RsCIN-style image re-scoring over the scored set.

    Each image's score becomes the similarity-weighted mean of the scores of
    its ``k`` most similar images (itself included; cosine similarity of
    image-level features, negative similarities clipped to 0), averaged
    over the window sizes ``k``. Images that look alike get similar scores;
    an isolated high score of a normal-looking image is damped. A convex
    combination of the input scores, so it stays within their range.

    Args:
        scores (Tensor): (M,) initial image scores.
        feats (Tensor): (M, C) image-level features (e.g. class tokens).
        windows (Sequence[int]): Neighbourhood sizes ``k`` (clipped to M);
            empty = no re-scoring.

    Returns:
        Tensor: (M,) re-scored image scores.
    """
    m = scores.shape[0]
    if not windows:
        return scores
    f = F.normalize(feats.float(), dim=-1)
    sim = (f @ f.t()).clamp(min=0.0)
    sim.fill_diagonal_(1.0)
    out = torch.zeros_like(scores, dtype=torch.float32)
    for k in windows:
        k = max(1, min(int(k), m))
        val, idx = torch.topk(sim, k, dim=1)
        w = val / val.sum(dim=1, keepdim=True).clamp(min=1e-12)
        out = out + (w * scores.float()[idx]).sum(dim=1)
    return out / len(windows)


def sample_key(sample: DetDataSample) -> str:
    """The key of a test image in the scored set (``img_path``, else
    ``img_id``)."""
    meta = sample.metainfo
    key = meta.get('img_path', meta.get('img_id'))
    if key is None:
        raise KeyError('MutualScoring needs img_path or img_id in the '
                       'data samples\' metainfo')
    return str(key)


@MODELS.register_module()
class MutualScoring(BaseAnomalyDetector):
    """MuSc-style zero-shot mutual scoring of a whole test set.

    Normalisation: min-max over each scored set (one object's images),
    ``(s - lo) / (hi - lo)`` with ``lo``/``hi`` the smallest and largest raw
    patch score of the set (one increasing affine map per set, which
    commutes with the smoothing; smoothed maps and re-scored image scores
    are convex combinations of patch scores and so stay in [0, 1]).

    Args:
        backbone (dict): :class:`ViTPatchExtractor` kwargs (``source`` =
            ``'torchvision'``/``'open_clip'``, ``arch``, ``checkpoint``,
            ``layers``, ``model_cfg``).
        backbone_checkpoint (str, optional): Local ViT weights.
        aggregation_degrees (Sequence[int]): Neighbourhood sizes ``r``.
            Defaults to (1, 3, 5).
        interval (float): Interval-averaging fraction. Defaults to 0.3.
        rescore_windows (Sequence[int]): RsCIN-style window sizes
            (:func:`rescore_images`); ``()`` disables re-scoring.
            Defaults to (2, 3).
    """

    frozen_modules = ('backbone', )

    def __init__(self,
                 backbone: ConfigType = dict(
                     source='torchvision', arch='vit_b_16',
                     layers=(2, 5, 8, 11)),
                 backbone_checkpoint: Optional[str] = None,
                 aggregation_degrees: Sequence[int] = (1, 3, 5),
                 interval: float = 0.3,
                 rescore_windows: Sequence[int] = (2, 3),
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
        self.rescore_windows = tuple(int(k) for k in rescore_windows)
        # scores of the current set (not saved in checkpoints)
        self._set_maps: Dict[str, Tensor] = {}
        self._set_image: Dict[str, Tensor] = {}

    # ------------------------------------------------------------------ #
    # the scored set
    # ------------------------------------------------------------------ #
    @torch.no_grad()
    def extract(self, inputs: Tensor,
                data_samples: List[DetDataSample]) -> Dict[str, tuple]:
        """Per-image features, one image at a time (bitwise independent of
        the batch): ``{key: ([layer tokens (N, C)], cls (C,), grid,
        object)}``; ``object`` is ``metainfo['object_name']`` (or '')."""
        out = {}
        for i, sample in enumerate(data_samples):
            tokens, cls, grid = self.backbone.forward_with_cls(inputs[i:i + 1])
            out[sample_key(sample)] = ([t[0].cpu() for t in tokens],
                                       cls[0].cpu(), grid,
                                       str(sample.metainfo.get(
                                           'object_name', '')))
        return out

    @torch.no_grad()
    def score_set(self, batches: Iterable[dict]) -> None:
        """Score a whole test set and keep the results for ``predict``.

        Images are grouped by ``metainfo['object_name']`` (one category's
        test split per set, also inside a pooled multi-category run); each
        group is one mutually scored set, min-max normalised on its own
        (MuSc normalises per category). Min-max is affine, so normalising
        the raw maps here equals normalising after ``predict``'s smoothing
        and resizing.

        Args:
            batches (Iterable[dict]): Dataloader batches (``inputs``,
                ``data_samples``), e.g. the Runner's test dataloader. In a
                distributed run every rank passes its shard; the features
                are all-gathered so every rank scores the full set.
        """
        from mmengine.dist import all_gather_object, get_world_size
        self._set_maps, self._set_image = {}, {}
        was_training = self.training
        self.eval()
        feats: Dict[str, tuple] = {}
        for data in batches:
            data = self.data_preprocessor(data, False)
            feats.update(self.extract(data['inputs'], data['data_samples']))
        if get_world_size() > 1:
            merged: Dict[str, tuple] = {}
            for part in all_gather_object(feats):
                merged.update(part)
            feats = merged
        self.train(was_training)
        groups: Dict[str, List[str]] = {}
        for key in sorted(feats):
            groups.setdefault(feats[key][3], []).append(key)
        for obj, keys in sorted(groups.items()):
            if len(keys) < 2:
                raise ValueError(
                    'MutualScoring needs a test set of at least 2 images per '
                    f'object, got {len(keys)} for {obj or "the set"!r}')
            raw, image = self._score_group([feats[k] for k in keys])
            lo, hi = float(raw.min()), float(raw.max())
            scale = max(hi - lo, 1e-12)
            for i, key in enumerate(keys):
                self._set_maps[key] = (raw[i] - lo) / scale
                self._set_image[key] = (image[i] - lo) / scale

    def _score_group(self, feats: List[tuple]) -> Tuple[Tensor, Tensor]:
        """Raw patch maps (M, h, w) and re-scored image scores (M,) of one
        set of per-image features (canonical order)."""
        grid = feats[0][2]
        device = self.backbone_device()
        total = 0
        count = 0
        for layer in range(len(feats[0][0])):
            tok = torch.stack([f[0][layer] for f in feats]).to(device)
            m, n, c = tok.shape
            grid_t = tok.transpose(1, 2).reshape(m, c, *grid).float()
            # MuSc: each image's token map is layer-normalised over
            # (C, h, w) (no affine), so a global offset / contrast change
            # of one image (e.g. brightness) does not separate it from the
            # set
            grid_t = F.layer_norm(grid_t, grid_t.shape[1:])
            for r in self.aggregation_degrees:
                agg = grid_t if r <= 1 else F.avg_pool2d(
                    grid_t, r, stride=1, padding=r // 2,
                    count_include_pad=False)
                # MuSc: L2-normalised aggregated patch features
                agg = F.normalize(agg.flatten(2).transpose(1, 2), dim=-1)
                total = total + mutual_scores(agg, self.interval)
                count += 1
        raw = (total / count).view(len(feats), *grid).cpu()
        image = raw.flatten(1).max(dim=1).values
        cls = torch.stack([f[1] for f in feats])
        return raw, rescore_images(image, cls, self.rescore_windows)

    def backbone_device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    # ------------------------------------------------------------------ #
    # scoring
    # ------------------------------------------------------------------ #
    def anomaly_maps(
        self,
        inputs: Tensor,
        data_samples: Optional[List[DetDataSample]] = None
    ) -> Tuple[Tensor, Tensor]:
        if not self._set_maps:
            raise RuntimeError(
                'MutualScoring scores a whole test set at once: add '
                "dict(type='SetScoringHook') to custom_hooks (the configs "
                'do) or call model.score_set(batches) before predicting')
        if data_samples is None:
            raise ValueError('MutualScoring.predict needs data_samples')
        maps, image = [], []
        for sample in data_samples:
            key = sample_key(sample)
            if key not in self._set_maps:
                raise KeyError(f'{key}: not in the scored set; call '
                               'score_set() with the dataloader that is '
                               'being predicted')
            maps.append(self._set_maps[key])
            image.append(self._set_image[key])
        maps = torch.stack(maps).to(inputs.device)
        maps = F.interpolate(
            maps[:, None], size=inputs.shape[-2:], mode='bilinear',
            align_corners=False)[:, 0]
        return maps, torch.stack(image).to(inputs.device)

    def normalize_scores(self, scores: Tensor) -> Tensor:
        """Identity: the set's min-max is applied in :meth:`score_set`
        (see the class docstring)."""
        return scores.clamp(0.0, 1.0)
