# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Common base of the anomaly-detection baselines (PatchCore, SimpleNet, ...).

Every baseline is an mmengine :class:`BaseModel` that runs in the Runner's
ordinary loops: ``tools/train.py`` fits it on normal images (a memory bank
or a few epochs of training) and ``tools/test.py`` scores the test split.

Inputs come from mmdet's ``DetDataPreprocessor`` in ``[-1, 1]``
(``mean=std=[127.5]*3``, ``bgr_to_rgb=True``; DESIGN "Image normalisation");
each model converts internally (ImageNet or CLIP statistics).

Predictions (DESIGN "Samples"), added to each ``DetDataSample``:

- ``pred_score_map``: :class:`PixelData` with ``data`` (1, H, W) float32 in
  [0, 1] at the **original image size** (``ori_shape``): the *raw* map at
  the network input size is Gaussian-smoothed (``smooth_sigma``, in input
  pixels), then normalised, cropped to ``img_shape`` (batch padding
  removed) and resized bilinearly to ``ori_shape``.
- ``pred_image_score`` (float in [0, 1]) and ``pred_image_label``
  (``0`` = anomalous / defect, ``-1`` = normal; ``score >= image_threshold``).

**Blur, then normalise** (as PatchCore and SimpleNet do): subclasses return
raw anomaly scores from :meth:`BaseAnomalyDetector.anomaly_maps`; the
Gaussian smoothing acts on the raw scores and only then
:meth:`BaseAnomalyDetector.normalize_scores` maps them to [0, 1].

**Normalisation rule.** Raw anomaly scores are mapped to [0, 1] by one
*global, strictly increasing* function per model, so pixel/image AUROC and
AUPRO are unchanged by it; methods with bounded scores use their natural
bound (documented per model), unbounded distances use
``sigmoid((s - score_center) / score_scale)`` with the two statistics
(buffers saved in the checkpoint) estimated from normal data during fitting.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import PixelData
from torch import Tensor, nn

from mmdet.structures import DetDataSample
from mmdet.utils import OptConfigType, OptMultiConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

DEFAULT_PREPROCESSOR = dict(
    type='DetDataPreprocessor',
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True,
    pad_size_divisor=1)


def renormalize(x: Tensor, mean: Sequence[float],
                std: Sequence[float]) -> Tensor:
    """Map images from [-1, 1] to ``(x01 - mean) / std``.

    Args:
        x (Tensor): (B, 3, H, W) in [-1, 1].
        mean, std: Per-channel statistics of the [0, 1] image.

    Returns:
        Tensor: (B, 3, H, W).
    """
    mean_t = x.new_tensor(mean).view(1, -1, 1, 1)
    std_t = x.new_tensor(std).view(1, -1, 1, 1)
    return ((x + 1.0) * 0.5 - mean_t) / std_t


def gaussian_blur(maps: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian smoothing of (B, H, W) maps (reflect padding).

    The kernel has ``2 * round(4 * sigma) + 1`` taps, clipped to the map
    size; ``sigma <= 0`` returns the input. Maps are filtered one at a time
    so a map's result does not depend on the batch it came in (convolution
    kernels may pick another algorithm for another batch size).
    """
    if sigma <= 0:
        return maps
    radius = int(4.0 * sigma + 0.5)
    h, w = maps.shape[-2:]
    radius = max(1, min(radius, (min(h, w) - 1)))
    coords = torch.arange(
        -radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-coords**2 / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    out = []
    for x in maps.reshape(-1, 1, 1, h, w):
        x = F.pad(x, (radius, radius, 0, 0), mode='reflect')
        x = F.conv2d(x, kernel.view(1, 1, 1, -1))
        x = F.pad(x, (0, 0, radius, radius), mode='reflect')
        out.append(F.conv2d(x, kernel.view(1, 1, -1, 1)))
    return torch.cat(out).view(maps.shape)


def smoothed_topk_mean(maps: Tensor, sigma: float, fraction: float) -> Tensor:
    """Image scores (B,): the mean of the top ``fraction`` of the pixels of
    each Gaussian-smoothed (``sigma``) map (B, H, W); at least one pixel."""
    smooth = gaussian_blur(maps, sigma).flatten(1)
    k = max(1, int(fraction * smooth.shape[1]))
    return smooth.topk(k, dim=1).values.mean(dim=1)


def freeze_module(module: nn.Module) -> nn.Module:
    """Set ``requires_grad=False`` on every parameter and eval mode."""
    for param in module.parameters():
        param.requires_grad_(False)
    module.eval()
    return module


class BaseAnomalyDetector(BaseModel):
    """Base class: Runner modes, frozen-module handling and post-processing.

    Subclasses implement :meth:`anomaly_maps` (and :meth:`loss` when they
    train). Attributes named in ``frozen_modules`` (set by subclasses before
    calling :meth:`_setup_frozen`) stay in eval mode, never get gradients
    and are left out of ``state_dict()`` (they are rebuilt from their local
    weight files at construction; loading a checkpoint fills them back in
    from the live module, so no "missing keys" are reported).

    Args:
        data_preprocessor (dict | nn.Module, optional): Defaults to mmdet's
            ``DetDataPreprocessor`` mapping pixels to [-1, 1].
        smooth_sigma (float): Gaussian sigma (input pixels) applied to the
            map before resizing. Defaults to 4 (PatchCore).
        image_threshold (float): Threshold on the normalised image score
            for ``pred_image_label``. Defaults to 0.5.
        init_cfg (dict, optional): mmengine init config.
    """

    frozen_modules: Tuple[str, ...] = ()

    def __init__(self,
                 data_preprocessor: OptConfigType = None,
                 smooth_sigma: float = 4.0,
                 image_threshold: float = 0.5,
                 init_cfg: OptMultiConfig = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = DEFAULT_PREPROCESSOR
        if isinstance(data_preprocessor, dict):
            from mmdet.registry import MODELS
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.smooth_sigma = float(smooth_sigma)
        self.image_threshold = float(image_threshold)
        self._register_state_dict_hook(_drop_frozen_state)
        self._register_load_state_dict_pre_hook(
            _fill_frozen_state, with_module=True)

    # ------------------------------------------------------------------ #
    # frozen parts
    # ------------------------------------------------------------------ #
    def _frozen_prefixes(self) -> List[str]:
        return [name + '.' for name in self.frozen_modules
                if getattr(self, name, None) is not None]

    def train(self, mode: bool = True) -> 'BaseAnomalyDetector':
        super().train(mode)
        for name in self.frozen_modules:
            module = getattr(self, name, None)
            if module is not None:
                module.eval()
        return self

    # ------------------------------------------------------------------ #
    # Runner interface
    # ------------------------------------------------------------------ #
    def forward(self,
                inputs: Tensor,
                data_samples: Optional[List[DetDataSample]] = None,
                mode: str = 'tensor') -> Union[Dict[str, Tensor], list,
                                                Tensor]:
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.anomaly_maps(inputs, data_samples)[0]
        raise RuntimeError(f'Invalid mode "{mode}". Only supports loss, '
                           'predict and tensor mode')

    def loss(self, inputs: Tensor,
             data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        raise NotImplementedError(
            f'{type(self).__name__} has no training loss')

    def anomaly_maps(
        self,
        inputs: Tensor,
        data_samples: Optional[List[DetDataSample]] = None
    ) -> Tuple[Tensor, Tensor]:
        """Raw anomaly maps at the input size and raw image scores.

        Args:
            inputs (Tensor): (B, 3, H, W) in [-1, 1].
            data_samples (list[DetDataSample], optional): Metainfo.

        Returns:
            tuple: ``maps`` (B, H, W) raw scores (higher = more anomalous,
            not yet smoothed) and ``image_scores`` (B,) raw scores on the
            same scale as the maps.
        """
        raise NotImplementedError

    def normalize_scores(self, scores: Tensor) -> Tensor:
        """The model's global, strictly increasing map of raw scores to
        [0, 1]. The default is the identity, for models whose raw scores
        are already bounded in [0, 1] (probabilities, ``(1 - cos) / 2``)."""
        return scores

    @torch.no_grad()
    def predict(self, inputs: Tensor,
                data_samples: List[DetDataSample]) -> List[DetDataSample]:
        """Score a batch; see the module docstring for the outputs."""
        maps, image_scores = self.anomaly_maps(inputs, data_samples)
        maps = gaussian_blur(maps.float(), self.smooth_sigma)
        return self.add_pred_to_datasample(
            data_samples, self.normalize_scores(maps),
            self.normalize_scores(image_scores.float()))

    def add_pred_to_datasample(self, data_samples: List[DetDataSample],
                               maps: Tensor,
                               image_scores: Tensor) -> List[DetDataSample]:
        """Crop padding, resize maps to ``ori_shape`` and attach them.

        Args:
            data_samples (list[DetDataSample]): One per image.
            maps (Tensor): (B, H, W) in [0, 1] at the input (padded) size.
            image_scores (Tensor): (B,) in [0, 1].
        """
        for i, sample in enumerate(data_samples):
            score_map = maps[i]
            img_h, img_w = sample.metainfo.get('img_shape', score_map.shape)
            score_map = score_map[:int(img_h), :int(img_w)]
            ori_h, ori_w = sample.metainfo.get('ori_shape', (img_h, img_w))
            score_map = F.interpolate(
                score_map[None, None], size=(int(ori_h), int(ori_w)),
                mode='bilinear', align_corners=False)[0]
            score_map = score_map.clamp_(0.0, 1.0).float()
            sample.pred_score_map = PixelData(data=score_map)
            score = float(image_scores[i].clamp(0.0, 1.0))
            sample.pred_image_score = score
            sample.pred_image_label = 0 if score >= self.image_threshold \
                else -1
        return data_samples


def _drop_frozen_state(module: BaseAnomalyDetector, state_dict: dict,
                       prefix: str, local_metadata: dict) -> None:
    """State-dict hook: leave frozen sub-modules out of checkpoints."""
    prefixes = [prefix + p for p in module._frozen_prefixes()]
    if not prefixes:
        return
    for key in [k for k in state_dict if k.startswith(tuple(prefixes))]:
        del state_dict[key]


def _fill_frozen_state(module: BaseAnomalyDetector, state_dict: dict,
                       prefix: str, *args) -> None:
    """Load pre-hook: take frozen weights from the live modules when the
    checkpoint does not carry them."""
    for name in module._frozen_prefixes():
        sub = getattr(module, name[:-1])
        for key, value in sub.state_dict().items():
            full = prefix + name + key
            if full not in state_dict:
                state_dict[full] = value
