# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Build the shipped Stage-1 / Stage-2 models and synthetic batches.

Random frozen weights are fine for speed and numerics checks, and they are
asked for openly: :func:`build_from_config` sets
``model.allow_random_frozen=True`` (the documented switch) unless the caller
passes ``allow_random_frozen=False``.
"""
import copy
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.structures import InstanceData

REPO_ROOT = Path(__file__).resolve().parents[2]
FULL_STAGE2_CFG = REPO_ROOT / 'configs' / 'imdd' / 'stage2_mvtec.py'
FULL_STAGE1_CFG = REPO_ROOT / 'configs' / 'imdd' / 'stage1_imdd.py'
TINY_STAGE2_CFG = REPO_ROOT / 'configs' / 'imdd' / 'tiny' / 'stage2_tiny.py'
TINY_STAGE1_CFG = REPO_ROOT / 'configs' / 'imdd' / 'tiny' / 'stage1_tiny.py'

DEFAULT_VOCAB = ('scratch', 'crack', 'stain')


def build_from_config(config: Union[str, Path, Config],
                      device: Union[str, torch.device] = 'cpu',
                      vocabulary: Optional[Sequence[str]] = DEFAULT_VOCAB,
                      seed: int = 0,
                      allow_random_frozen: bool = True,
                      **model_overrides) -> nn.Module:
    """Build ``config``'s model on ``device`` with its weights initialised.

    Args:
        config: a config file or a loaded :class:`Config`.
        device: where the model (and its hidden frozen parts) go.
        vocabulary: Stage-2 class names (ignored by Stage-1 models).
        seed: torch seed before building (trainable parts' init).
        allow_random_frozen: the model key of the same name.
        **model_overrides: more keys merged into ``cfg.model``.
    """
    from mmdet.registry import MODELS

    from imdd_mm.utils import register_all_modules
    register_all_modules()
    cfg = config if isinstance(config, Config) else Config.fromfile(
        str(config))
    model_cfg = copy.deepcopy(cfg.model)
    if model_cfg.get('type') == 'IMDDMask2Former' and vocabulary:
        model_cfg['vocabulary'] = list(vocabulary)
    model_cfg['allow_random_frozen'] = allow_random_frozen
    model_cfg.update(model_overrides)
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model.to(device)


def _walk_frozen(module: nn.Module, prefix: str, seen: set
                 ) -> Iterator[Tuple[str, nn.Module]]:
    for mod_name, mod in module.named_modules(prefix=prefix):
        named = getattr(mod, 'named_frozen_modules', None)
        if named is None:
            continue
        for name, frozen in named():
            if id(frozen) in seen:
                continue
            seen.add(id(frozen))
            full = f'{mod_name}.{name}' if mod_name else name
            yield full, frozen
            yield from _walk_frozen(frozen, full, seen)


def frozen_modules(model: nn.Module) -> Dict[str, nn.Module]:
    """Every network held outside the module tree, by dotted name.

    Walks the model's sub-modules and, recursively, the frozen networks
    themselves (a text encoder held by a head may hold its own tower).
    """
    return dict(_walk_frozen(model, '', set()))


def trainable_parameters(model: nn.Module) -> Dict[str, nn.Parameter]:
    """The parameters an optimizer would see (``requires_grad=True``)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _rect_masks(rng: np.random.Generator, n: int, h: int,
                w: int) -> np.ndarray:
    masks = np.zeros((n, h, w), np.uint8)
    for k in range(n):
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        dy, dx = rng.integers(h // 16 + 1, h // 3), rng.integers(
            w // 16 + 1, w // 3)
        masks[k, y0:y0 + dy, x0:x0 + dx] = 1
    return masks


def stage2_batch(batch_size: int,
                 size: int,
                 num_classes: int = len(DEFAULT_VOCAB),
                 seed: int = 0) -> dict:
    """A raw Stage-2 batch, as a dataloader yields it.

    Every image holds one or two rectangular defects of random classes;
    images are random uint8 noise (the speed and numerics checks do not
    depend on content). Feed it to ``model.train_step`` /
    ``model.test_step``, or to ``model.data_preprocessor(batch, training)``
    and then ``model(**data, mode=...)``.

    Returns:
        dict: ``inputs`` (list of (3, size, size) uint8 tensors) and
        ``data_samples`` (list of ``DetDataSample`` with ``gt_instances``).
    """
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks

    from imdd_mm.models.detectors import masks_to_boxes
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch_size):
        n = int(rng.integers(1, 3))
        masks = _rect_masks(rng, n, size, size)
        meta = dict(
            img_shape=(size, size), ori_shape=(size, size),
            batch_input_shape=(size, size), pad_shape=(size, size),
            scale_factor=(1.0, 1.0), caption='', caption_nouns=[],
            is_normal=False)
        sample = DetDataSample(metainfo=meta)
        sample.gt_instances = InstanceData(
            labels=torch.from_numpy(rng.integers(0, num_classes, n)).long(),
            masks=BitmapMasks(masks, size, size),
            bboxes=masks_to_boxes(torch.from_numpy(masks).bool()))
        samples.append(sample)
        inputs.append(
            torch.randint(0, 256, (3, size, size), generator=g,
                          dtype=torch.uint8))
    return dict(inputs=inputs, data_samples=samples)


def stage1_batch(batch_size: int,
                 size: int,
                 captions: Optional[List[str]] = None,
                 seed: int = 0) -> dict:
    """A raw Stage-1 batch: random images with captions (see
    :func:`stage2_batch`)."""
    from mmengine.structures import BaseDataElement
    g = torch.Generator().manual_seed(seed)
    captions = captions or [
        f'metal plate with a {DEFAULT_VOCAB[i % len(DEFAULT_VOCAB)]} '
        'near the edge' for i in range(batch_size)
    ]
    inputs = [
        torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
        for _ in range(batch_size)
    ]
    samples = [BaseDataElement(metainfo=dict(caption=c)) for c in captions]
    return dict(inputs=inputs, data_samples=samples)
