# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Building single open_clip towers (image or text) without network access.

``model_name`` is an open_clip model name (``'ViT-B-16'``, ``'ViT-L-14'``...)
or a config dict ``dict(embed_dim=..., vision_cfg=dict(...),
text_cfg=dict(...), quick_gelu=False)`` (e.g. :data:`TINY_CLIP_CONFIG`).
``pretrained`` is ``None`` (random init, seeded), an open_clip pretrained tag
(``'openai'``, ``'laion2b_s34b_b88k'``...; downloaded by open_clip, so needs
the network or its cache) or a local checkpoint file. With ``pretrained=None``
only the requested tower is built (ViT-L-14's image tower is never built
for the text encoder).
"""
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn

from ..backbones.frozen import seeded_init

#: a tiny CLIP (random init) with open_clip's BPE vocabulary, for CPU tests.
#: embed_dim 512 like ViT-B-16, so captioner defaults (in_dim=512) fit.
TINY_CLIP_CONFIG: Dict[str, Any] = dict(
    embed_dim=512,
    vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=8,
                    head_width=16),
    text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2,
                  layers=1),
)

ModelName = Union[str, Dict[str, Any]]


def _model_cfg(model_name: ModelName) -> Dict[str, Any]:
    import open_clip
    if isinstance(model_name, dict):
        cfg = dict(model_name)
    else:
        cfg = open_clip.get_model_config(model_name)
        if cfg is None:
            raise ValueError(f'unknown open_clip model {model_name!r}; see '
                             'open_clip.list_models()')
        cfg = dict(cfg)
    for key in ('embed_dim', 'vision_cfg', 'text_cfg'):
        if key not in cfg:
            raise KeyError(f'open_clip model config lacks {key!r}: {cfg}')
    return cfg


def _create_pretrained(model_name: ModelName, pretrained: str):
    import open_clip
    if isinstance(model_name, dict):
        cfg = _model_cfg(model_name)
        with seeded_init(0):
            model = open_clip.CLIP(
                embed_dim=cfg['embed_dim'], vision_cfg=cfg['vision_cfg'],
                text_cfg=cfg['text_cfg'],
                quick_gelu=cfg.get('quick_gelu', False))
        open_clip.load_checkpoint(model, pretrained)
        return model
    return open_clip.create_model(model_name, pretrained=pretrained)


def _preprocess(visual: nn.Module) -> Tuple[tuple, tuple, Tuple[int, int]]:
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    pp = dict(getattr(visual, 'preprocess_cfg', None) or {})
    mean = pp.get('mean') or getattr(visual, 'image_mean', None) \
        or OPENAI_DATASET_MEAN
    std = pp.get('std') or getattr(visual, 'image_std', None) \
        or OPENAI_DATASET_STD
    size = pp.get('size') or getattr(visual, 'image_size')
    if isinstance(size, int):
        size = (size, size)
    return tuple(mean), tuple(std), tuple(size)


def build_clip_visual(model_name: ModelName = 'ViT-B-16',
                      pretrained: Optional[str] = None,
                      seed: Optional[int] = 0) -> Tuple[nn.Module, dict]:
    """Build an open_clip image tower.

    Returns:
        tuple[nn.Module, dict]: the tower (``(B,3,S,S)`` normalised image ->
        ``(B, D)``) and ``dict(mean, std, image_size, output_dim)``.
    """
    if pretrained is None:
        from open_clip.model import _build_vision_tower
        cfg = _model_cfg(model_name)
        with seeded_init(seed):
            visual = _build_vision_tower(cfg['embed_dim'], cfg['vision_cfg'],
                                         cfg.get('quick_gelu', False))
        out_dim = cfg['embed_dim']
    else:
        model = _create_pretrained(model_name, pretrained)
        visual = model.visual
        out_dim = getattr(visual, 'output_dim', None) or _model_cfg(
            model_name)['embed_dim']
    mean, std, size = _preprocess(visual)
    return visual, dict(mean=mean, std=std, image_size=size,
                        output_dim=int(out_dim))


class OpenCLIPTextTower(nn.Module):
    """An open_clip text tower: token ids (N, L) -> embeddings (N, D).

    Wraps either open_clip's ``TextTransformer`` (random init path) or a
    full ``CLIP`` whose image tower was dropped (pretrained path).
    """

    def __init__(self, module: nn.Module, embed_dim: int) -> None:
        super().__init__()
        self.module = module
        self.embed_dim = int(embed_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if hasattr(self.module, 'encode_text'):
            out = self.module.encode_text(tokens)
        else:
            out = self.module(tokens)
        if isinstance(out, tuple):
            out = out[0]
        return out


def build_clip_text(model_name: ModelName = 'ViT-L-14',
                    pretrained: Optional[str] = None,
                    seed: Optional[int] = 0):
    """Build an open_clip text tower and its tokenizer.

    Returns:
        tuple[OpenCLIPTextTower, callable]: the tower and a tokenizer
        ``list[str] -> LongTensor (N, context_length)``.
    """
    import open_clip
    cfg = _model_cfg(model_name)
    text_cfg = dict(cfg['text_cfg'])
    if pretrained is None:
        from open_clip.model import _build_text_tower
        with seeded_init(seed):
            module = _build_text_tower(cfg['embed_dim'], text_cfg,
                                       cfg.get('quick_gelu', False))
    else:
        model = _create_pretrained(model_name, pretrained)
        if hasattr(model, 'text'):  # CustomTextCLIP
            module = model.text
        else:
            model.visual = nn.Identity()  # free the image tower
            module = model
    if isinstance(model_name, str):
        tokenizer = open_clip.get_tokenizer(model_name)
    else:
        if text_cfg.get('hf_tokenizer_name'):
            tokenizer = open_clip.tokenizer.HFTokenizer(
                text_cfg['hf_tokenizer_name'],
                context_length=text_cfg.get('context_length', 77))
        else:
            tokenizer = open_clip.tokenizer.SimpleTokenizer(
                context_length=text_cfg.get('context_length', 77))
    return OpenCLIPTextTower(module, cfg['embed_dim']), tokenizer
