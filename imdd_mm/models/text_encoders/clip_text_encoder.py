# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Frozen open_clip text tower (paper eq. 3: CLIP_text(t) in R^768)."""
from typing import List, Optional, Sequence, Union

from torch import Tensor

from ..backbones._registry import register_model
from .base_text_encoder import BaseTextEncoder
from .openclip_utils import build_clip_text


@register_model(aliases=('IMDDCLIPTextEncoder', ), mmseg_class_name=False)
class CLIPTextEncoder(BaseTextEncoder):
    """open_clip text encoder, frozen (default ViT-L-14, 768-d).

    Registry names: ``CLIPTextEncoder`` and ``IMDDCLIPTextEncoder`` in
    mmdet's MODELS, only ``IMDDCLIPTextEncoder`` in mmseg's (which has its
    own ``CLIPTextEncoder``): mmseg-scoped configs must use the latter.

    Args:
        model_name (str | dict): open_clip model name or config dict
            (:data:`TINY_CLIP_CONFIG` for tests). Default ``'ViT-L-14'``.
        pretrained (str | None): ``None`` (random init, seeded), an
            open_clip pretrained tag (e.g. ``'openai'``; read from
            open_clip's cache, never downloaded here) or a local checkpoint
            file; OpenAI weights build the ``-quickgelu`` variant.
        seed (int | None): seed of the random init. Default 0.
        templates, batch_size, max_cache_size: see :class:`BaseTextEncoder`.

    Example:
        >>> from imdd_mm.models.text_encoders import (CLIPTextEncoder,
        ...                                           TINY_CLIP_CONFIG)
        >>> enc = CLIPTextEncoder(model_name=TINY_CLIP_CONFIG)
        >>> enc.encode(['metal plate with scratches']).shape
        torch.Size([1, 512])
        >>> enc.encode_names(['scratch', 'crack']).shape
        torch.Size([2, 512])
    """

    def __init__(self,
                 model_name: Union[str, dict] = 'ViT-L-14',
                 pretrained: Optional[str] = None,
                 seed: Optional[int] = 0,
                 templates: Optional[Sequence[str]] = None,
                 batch_size: int = 256,
                 max_cache_size: int = 65536) -> None:
        super().__init__(templates=templates, batch_size=batch_size,
                         max_cache_size=max_cache_size)
        tower, tokenizer, source = build_clip_text(
            model_name, pretrained, seed, with_source=True)
        self.embed_dim = tower.embed_dim
        self.tokenizer = tokenizer
        self.add_frozen_module('tower', tower)
        self.set_frozen_source('tower', source)

    def _encode_batch(self, texts: List[str]) -> Tensor:
        tokens = self.tokenizer(texts).to(self.device)
        return self.tower(tokens)
