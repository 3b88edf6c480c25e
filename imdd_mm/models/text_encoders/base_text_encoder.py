# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Frozen text encoders with prompt templates and an embedding cache."""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..backbones.frozen import FrozenModulesMixin

#: prompt templates for industrial defect names (``{}`` = the name)
INDUSTRIAL_TEMPLATES: Tuple[str, ...] = (
    'a photo of a {} defect.',
    'a {} on an industrial surface.',
    'a close-up photo of a {}.',
    'an industrial inspection image showing a {}.',
    'a {} defect on a manufactured part.',
    'a photo of a product with a {}.',
    'a cropped photo of a {} defect.',
    'a {} on a metal, plastic or textile surface.',
)


class BaseTextEncoder(FrozenModulesMixin, nn.Module):
    """Frozen text encoder: strings -> (N, embed_dim) float32 embeddings.

    Subclasses build their tower(s) with :meth:`add_frozen_module` (so the
    weights never enter ``state_dict()``, ``parameters()`` or the optimizer)
    and implement :meth:`_encode_batch`. This class adds

    * :meth:`encode`: chunked, ``no_grad``, on the module's device, with a
      per-string LRU cache (caption nouns repeat across iterations, so the
      grounding loss does not rerun the tower for them);
    * :meth:`encode_names`: the prompt-ensembled class embeddings (mean of
      the L2-normalised template embeddings, re-normalised), cached per
      ``(names, templates)``.

    Results follow the module's device (``.to()`` moves the towers too).
    Call :meth:`clear_cache` after replacing the tower weights.

    Args:
        templates (Sequence[str] | None): default prompt templates for
            :meth:`encode_names`; ``None`` -> :data:`INDUSTRIAL_TEMPLATES`.
        batch_size (int): strings per tower call. Default 256.
        max_cache_size (int): LRU size of the per-string cache. Default
            65536.
    """

    def __init__(self,
                 templates: Optional[Sequence[str]] = None,
                 batch_size: int = 256,
                 max_cache_size: int = 65536) -> None:
        super().__init__()
        self._init_device_tracker()
        self.templates = tuple(templates or INDUSTRIAL_TEMPLATES)
        for t in self.templates:
            if '{}' not in t:
                raise ValueError(f'template {t!r} has no {{}} placeholder')
        self.batch_size = int(batch_size)
        self.max_cache_size = int(max_cache_size)
        self._text_cache: 'OrderedDict[str, Tensor]' = OrderedDict()
        self._names_cache: Dict[tuple, Tensor] = {}
        self.num_tower_calls = 0  # strings sent through the tower

    embed_dim: int

    def _encode_batch(self, texts: List[str]) -> Tensor:
        """Run the tower on ``texts`` -> (N, embed_dim) on ``self.device``."""
        raise NotImplementedError

    def clear_cache(self) -> None:
        self._text_cache.clear()
        self._names_cache.clear()

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> Tensor:
        """Embed strings.

        Args:
            texts (Sequence[str]): N strings.

        Returns:
            Tensor: (N, embed_dim) float32 on ``self.device``; not
            normalised, no grad.
        """
        if isinstance(texts, str):
            raise TypeError('encode() takes a list of strings, got a str')
        texts = [str(t) for t in texts]
        device = self.device
        if not texts:
            return torch.zeros(0, self.embed_dim, device=device)
        missing = [t for t in dict.fromkeys(texts)
                   if t not in self._text_cache]
        for i in range(0, len(missing), self.batch_size):
            chunk = missing[i:i + self.batch_size]
            emb = self._encode_batch(chunk).detach().float().cpu()
            if emb.shape != (len(chunk), self.embed_dim):
                raise RuntimeError(
                    f'{type(self).__name__}: tower returned '
                    f'{tuple(emb.shape)}, expected '
                    f'({len(chunk)}, {self.embed_dim})')
            self.num_tower_calls += len(chunk)
            for t, e in zip(chunk, emb):
                self._text_cache[t] = e
        out = []
        for t in texts:
            self._text_cache.move_to_end(t)
            out.append(self._text_cache[t])
        while len(self._text_cache) > self.max_cache_size:
            self._text_cache.popitem(last=False)
        return torch.stack(out).to(device)

    @torch.no_grad()
    def encode_names(self,
                     names: Sequence[str],
                     templates: Optional[Sequence[str]] = None) -> Tensor:
        """Prompt-ensembled embeddings of class names.

        Args:
            names (Sequence[str]): K class names (``'_'`` read as space).
            templates (Sequence[str] | None): prompt templates with ``{}``;
                ``None`` -> ``self.templates``.

        Returns:
            Tensor: (K, embed_dim), L2-normalised, on ``self.device``.
        """
        if isinstance(names, str):
            raise TypeError('encode_names() takes a list of names, got a str')
        templates = tuple(templates or self.templates)
        key = (tuple(names), templates)
        cached = self._names_cache.get(key)
        if cached is None:
            if not names:
                cached = torch.zeros(0, self.embed_dim)
            else:
                prompts = [tpl.format(str(n).replace('_', ' '))
                           for n in names for tpl in templates]
                emb = F.normalize(self.encode(prompts).float().cpu(), dim=-1)
                emb = emb.view(len(names), len(templates), -1).mean(1)
                cached = F.normalize(emb, dim=-1)
            self._names_cache[key] = cached
        return cached.to(self.device)

    def forward(self, texts: Sequence[str]) -> Tensor:
        """Alias of :meth:`encode`."""
        return self.encode(texts)
