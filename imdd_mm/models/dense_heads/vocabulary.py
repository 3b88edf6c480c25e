# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Open-vocabulary classification shared by the mmdet and mmseg heads.

The classifier of eq. 12: queries are projected to the text space and
scored by a scaled cosine similarity with the cached text embeddings of the
active vocabulary plus a learnable no-object ("void") embedding.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..backbones.frozen import FrozenModulesMixin


def nouns_of(img_meta: dict) -> List[str]:
    """Caption nouns of a sample: metainfo ``caption_nouns``, else extracted
    from ``caption`` by :func:`imdd_mm.vocab.extract_nouns` when available.

    Args:
        img_meta (dict): Sample metainfo.

    Returns:
        list[str]: Unique nouns in order of appearance (may be empty).
    """
    nouns = img_meta.get('caption_nouns')
    if nouns is None or len(nouns) == 0:
        caption = img_meta.get('caption') or ''
        nouns = []
        if caption:
            try:
                from imdd_mm.vocab import extract_nouns
            except ImportError:
                extract_nouns = None
            if extract_nouns is not None:
                nouns = list(extract_nouns(caption))
    seen, out = set(), []
    for noun in nouns:
        noun = str(noun).strip()
        if noun and noun not in seen:
            seen.add(noun)
            out.append(noun)
    return out


class OpenVocabClassifierMixin(FrozenModulesMixin):
    """Adds a text-embedding classifier to an ``nn.Module`` head.

    The frozen text encoder is held by :class:`FrozenModulesMixin` (outside
    the module tree), so its weights are in neither ``state_dict()``,
    ``parameters()`` nor the DDP bucket; ``_apply`` moves it with the head
    and its source is part of :meth:`frozen_sources`. The vocabulary
    embeddings are a non-persistent buffer.
    """

    def _init_open_vocab(self,
                         text_encoder,
                         query_dim: int,
                         prompt_templates: Optional[Sequence[str]] = None,
                         logit_scale_init: float = math.log(1 / 0.07),
                         learnable_logit_scale: bool = True,
                         max_logit_scale: float = 100.0,
                         void_weight: float = 0.1,
                         noun_templates: Optional[Sequence[str]] = None
                         ) -> None:
        if isinstance(text_encoder, nn.Module):
            encoder = text_encoder
        else:
            from mmdet.registry import MODELS
            encoder = MODELS.build(text_encoder)
        self.add_frozen_module('text_encoder', encoder)
        text_dim = int(encoder.embed_dim)
        self.text_dim = text_dim
        self.prompt_templates = (
            tuple(prompt_templates) if prompt_templates is not None else None)
        if noun_templates is not None:
            noun_templates = tuple(noun_templates)
            bad = [t for t in noun_templates if '{}' not in t]
            if bad or not noun_templates:
                raise ValueError('noun_templates must be templates with a {} '
                                 f'placeholder, got {list(noun_templates)}')
        self.noun_templates = noun_templates
        self.cls_proj = nn.Linear(query_dim, text_dim)
        self.void_embedding = nn.Parameter(torch.randn(text_dim) /
                                           math.sqrt(text_dim))
        self.logit_scale = nn.Parameter(
            torch.tensor(float(logit_scale_init)),
            requires_grad=learnable_logit_scale)
        self.max_logit_scale = float(max_logit_scale)
        self.void_weight = float(void_weight)
        self.register_buffer(
            'class_embeddings', torch.zeros(0, text_dim), persistent=False)
        self._vocabulary: Optional[Tuple[str, ...]] = None
        self._word_cache: Dict[str, Tensor] = {}
        self._query_embeds: List[Tensor] = []
        self.num_things_classes = 0
        self.num_stuff_classes = 0
        self.num_classes = 0

    # -- text encoder ---------------------------------------------------
    # ``self.text_encoder``: the frozen text encoder (FrozenModulesMixin)
    def _text_device(self) -> torch.device:
        return self.cls_proj.weight.device

    # -- vocabulary -----------------------------------------------------
    @property
    def vocabulary(self) -> Optional[Tuple[str, ...]]:
        """The active category names (None before one is set)."""
        return self._vocabulary

    @property
    def class_weight(self) -> List[float]:
        """Cross-entropy class weights: 1 per category, ``void_weight`` for
        no-object."""
        return [1.0] * self.num_classes + [self.void_weight]

    @torch.no_grad()
    def set_vocabulary(self, names: Sequence[str]) -> None:
        """Activate a vocabulary (category names; may be unseen in
        training). Text embeddings come from the encoder's cache when the
        names were encoded before.

        Args:
            names (Sequence[str]): Category names, index = label.
        """
        names = tuple(str(n) for n in names)
        if len(names) == 0:
            raise ValueError('the vocabulary must contain at least one name')
        if names == self._vocabulary and \
                self.class_embeddings.shape[0] == len(names):
            return
        embeds = self.text_encoder.encode_names(
            list(names), self.prompt_templates)
        embeds = F.normalize(embeds.float(), dim=-1)
        self.class_embeddings = embeds.to(self._text_device())
        self._vocabulary = names
        self.num_things_classes = len(names)
        self.num_stuff_classes = 0
        self.num_classes = len(names)
        if hasattr(self, 'loss_cls') and hasattr(self.loss_cls,
                                                 'class_weight'):
            self.loss_cls.class_weight = self.class_weight

    def _require_vocabulary(self) -> None:
        if self._vocabulary is None:
            raise RuntimeError(
                f'{type(self).__name__} has no vocabulary: set '
                '`vocabulary` in the config, call set_vocabulary(names), or '
                'assign model.dataset_meta = dict(classes=...)')
        if self.class_embeddings.device != self._text_device():
            self.class_embeddings = self.class_embeddings.to(
                self._text_device())

    @torch.no_grad()
    def encode_words(self, batch_words: List[List[str]],
                     device: torch.device) -> Tuple[Tensor, Tensor]:
        """Normalised text embeddings of caption nouns, padded per sample.

        Each noun goes to the text encoder as written (the paper's
        ``CLIP_text(w_k)``); prompt ensembling is for class names only,
        unless ``noun_templates`` asks for it.

        Args:
            batch_words (list[list[str]]): Nouns per sample.
            device (torch.device): Output device.

        Returns:
            tuple[Tensor, Tensor]: ``(B, W, D)`` embeddings and ``(B, W)``
            bool mask of real words (W = max number of nouns, >= 1).
        """
        missing = sorted({w for words in batch_words for w in words} -
                         set(self._word_cache))
        if missing:
            if self.noun_templates is None:
                embeds = self.text_encoder.encode(missing)
            else:
                embeds = self.text_encoder.encode_names(missing,
                                                        self.noun_templates)
            embeds = F.normalize(embeds.float(), dim=-1).cpu()
            if len(self._word_cache) > 50000:
                self._word_cache.clear()
            for word, emb in zip(missing, embeds):
                self._word_cache[word] = emb
        num = len(batch_words)
        width = max([len(words) for words in batch_words] + [1])
        out = torch.zeros(num, width, self.text_dim)
        mask = torch.zeros(num, width, dtype=torch.bool)
        for i, words in enumerate(batch_words):
            for j, word in enumerate(words):
                out[i, j] = self._word_cache[word]
                mask[i, j] = True
        return out.to(device), mask.to(device)

    # -- classifier -----------------------------------------------------
    def embed_queries(self, decoder_out: Tensor) -> Tensor:
        """(B, Q, C) decoder output -> (B, Q, D) normalised text-space
        embeddings."""
        return F.normalize(self.cls_proj(decoder_out), dim=-1)

    def classify(self, query_embeds: Tensor) -> Tensor:
        """Eq. 12 logits of normalised query embeddings.

        Args:
            query_embeds (Tensor): (B, Q, D), L2-normalised.

        Returns:
            Tensor: (B, Q, K+1) logits; the last column is no-object.
        """
        void = F.normalize(self.void_embedding, dim=-1)[None]
        text = torch.cat(
            [self.class_embeddings.to(void.dtype), void], dim=0)
        scale = self.logit_scale.exp().clamp(max=self.max_logit_scale)
        return scale * torch.einsum('bqd,kd->bqk', query_embeds,
                                    text.to(query_embeds.dtype))
