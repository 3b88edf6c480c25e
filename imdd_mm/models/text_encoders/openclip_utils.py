# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Building single open_clip towers (image or text) without network access.

``model_name`` is an open_clip model name (``'ViT-B-16'``, ``'ViT-L-14'``...)
or a config dict ``dict(embed_dim=..., vision_cfg=dict(...),
text_cfg=dict(...), quick_gelu=False)`` (e.g. :data:`TINY_CLIP_CONFIG`).
``pretrained`` is ``None`` (random init, seeded), an open_clip pretrained tag
(``'openai'``, ``'laion2b_s34b_b88k'``...) or a local checkpoint file. A tag
is read from open_clip's caches only (the Hugging Face hub cache, or
``~/.cache/clip`` for URL downloads): nothing is downloaded at build time;
missing weights raise
:class:`~imdd_mm.utils.provenance.FrozenWeightsUnavailable` naming what was
looked for (or fall back to random weights inside
:func:`~imdd_mm.utils.provenance.random_frozen_fallback`). With
``pretrained=None`` only the requested tower is built (ViT-L-14's image
tower is never built for the text encoder).

OpenAI's CLIP weights were trained with QuickGELU: for them the
``-quickgelu`` variant of the model is built (:func:`openclip_model_name`),
whether they come as the ``'openai'`` tag or as a local file (recognised by
``openai`` in its path or an ``open_clip_config.json`` beside it saying
``quick_gelu``). Every builder returns the weights' provenance record
(:mod:`imdd_mm.utils.provenance`).
"""
import json
import logging
import os
import os.path as osp
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log

from imdd_mm.utils.provenance import (FrozenWeightsUnavailable,
                                      config_sha256, file_sha256,
                                      random_fallback_enabled, random_source,
                                      unavailable)
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


def _looks_like_path(pretrained: str) -> bool:
    return (os.sep in pretrained or pretrained.startswith(('.', '~'))
            or pretrained.endswith(('.pt', '.pth', '.bin', '.safetensors')))


def is_openai_weights(model_name: ModelName, pretrained: Optional[str]
                      ) -> bool:
    """Whether ``pretrained`` names OpenAI CLIP weights (QuickGELU)."""
    if not pretrained:
        return False
    pretrained = str(pretrained)
    if not _looks_like_path(pretrained) and not osp.isfile(pretrained):
        if pretrained.lower() == 'openai':
            return True
        if isinstance(model_name, str):
            import open_clip
            base = model_name.replace('-quickgelu', '')
            return bool(open_clip.get_pretrained_cfg(base, pretrained).get(
                'quick_gelu', False))
        return False
    path = osp.abspath(osp.expanduser(pretrained))
    if 'openai' in path.lower():
        return True
    side = osp.join(osp.dirname(path), 'open_clip_config.json')
    if osp.isfile(side):
        with open(side, encoding='utf-8') as f:
            return bool(json.load(f).get('model_cfg', {}).get('quick_gelu'))
    return False


def openclip_model_name(model_name: ModelName,
                        pretrained: Optional[str]) -> ModelName:
    """The model to build for ``pretrained``: the ``-quickgelu`` variant
    (or ``quick_gelu=True`` in a config dict) for OpenAI weights."""
    if not is_openai_weights(model_name, pretrained):
        return model_name
    if isinstance(model_name, dict):
        return dict(model_name, quick_gelu=True)
    if model_name.endswith('-quickgelu'):
        return model_name
    import open_clip
    variant = f'{model_name}-quickgelu'
    if open_clip.get_model_config(variant) is None:
        raise ValueError(
            f'{pretrained!r} are OpenAI CLIP weights (QuickGELU) but '
            f'open_clip has no {variant!r}; give a config dict with '
            'quick_gelu=True')
    return variant


def _model_label(model_name: ModelName) -> Dict[str, str]:
    if isinstance(model_name, dict):
        return dict(config_sha256=config_sha256(_model_cfg(model_name)))
    return dict(model=model_name)


def _cached_tag_file(model_name: str, tag: str) -> Tuple[Optional[str], str]:
    """(cached file or None, what was looked for) of an open_clip tag."""
    import open_clip
    base = model_name.replace('-quickgelu', '')
    cfg = open_clip.get_pretrained_cfg(model_name, tag) or \
        open_clip.get_pretrained_cfg(base, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(base)
        raise ValueError(f'{tag!r} is neither a file nor an open_clip '
                         f'pretrained tag of {base!r} (tags: {tags})')
    looked = []
    hub = cfg.get('hf_hub', '')
    if hub:
        from huggingface_hub import try_to_load_from_cache
        # 'org/name/' (default file names) or 'org/name/file.bin'
        repo, fname = os.path.split(hub)
        repo = repo.rstrip('/')
        names = [fname] if fname else []
        names += ['open_clip_model.safetensors',
                  'open_clip_pytorch_model.safetensors',
                  'open_clip_pytorch_model.bin']
        for name in names:
            found = try_to_load_from_cache(repo, name)
            if isinstance(found, str) and osp.isfile(found):
                return found, ''
        looked.append(f'the Hugging Face cache entry {repo}')
    url = cfg.get('url', '')
    if url:
        path = osp.join(osp.expanduser('~/.cache/clip'), osp.basename(url))
        if osp.isfile(path):
            return path, ''
        looked.append(path)
    return None, ' or '.join(looked) or 'nothing (the tag has no file)'


def resolve_openclip_weights(model_name: ModelName, pretrained: str,
                             what: str) -> Tuple[str, dict]:
    """(local weights file, provenance record) of a tag or file.

    Raises:
        FrozenWeightsUnavailable: naming the file or cache entry.
    """
    label = _model_label(model_name)
    pretrained = str(pretrained)
    path = osp.abspath(osp.expanduser(pretrained))
    if osp.isfile(path):
        return path, dict(kind='file', path=path, sha256=file_sha256(path),
                          **label)
    if _looks_like_path(pretrained):
        raise unavailable(what, f'the open_clip weights file {path}',
                          'No such file.')
    if isinstance(model_name, dict):
        raise ValueError(f'{what}: {pretrained!r} is not a file, and '
                         'open_clip pretrained tags need a model name, not '
                         'a config dict')
    found, looked = _cached_tag_file(model_name, pretrained)
    if found is None:
        fetch = (f"python -c \"import open_clip; open_clip.create_model("
                 f"'{model_name}', pretrained='{pretrained}')\"")
        raise unavailable(
            what, f'the open_clip tag {pretrained!r} of {model_name!r} in '
            f'{looked}', f'Fetch it once with `{fetch}` or give a local '
            'file as `pretrained`.')
    real = osp.realpath(found)
    blob = osp.basename(real)
    sha = blob if ('/blobs/' in real.replace(os.sep, '/')
                   and len(blob) == 64) else file_sha256(real)
    return found, dict(kind='open_clip', tag=pretrained, path=found,
                       sha256=sha, **label)


def _create_pretrained(model_name: ModelName, weights: str):
    """A full open_clip CLIP with the weights of a local file."""
    import open_clip
    if isinstance(model_name, dict):
        cfg = _model_cfg(model_name)
        with seeded_init(0):
            model = open_clip.CLIP(
                embed_dim=cfg['embed_dim'], vision_cfg=cfg['vision_cfg'],
                text_cfg=cfg['text_cfg'],
                quick_gelu=cfg.get('quick_gelu', False))
        open_clip.load_checkpoint(model, weights)
        return model
    return open_clip.create_model(model_name, pretrained=weights)


def _pretrained_or_fallback(model_name: ModelName, pretrained: Optional[str],
                            what: str) -> Tuple[Optional[str], ModelName,
                                                Optional[dict]]:
    """(weights file or None for random, model to build, record or None;
    None = random, recorded by the caller)."""
    name = openclip_model_name(model_name, pretrained)
    if pretrained is None:
        return None, name, None
    try:
        weights, source = resolve_openclip_weights(name, pretrained, what)
    except FrozenWeightsUnavailable as err:
        if not random_fallback_enabled():
            raise
        print_log(f'{str(err).split(" Nothing is downloaded")[0]} -> '
                  'RANDOM weights (allow_random_frozen=True)',
                  logger='current', level=logging.WARNING)
        return None, name, dict(kind='requested', pretrained=str(pretrained))
    return weights, name, source


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
        ``(B, D)``) and ``dict(mean, std, image_size, output_dim, source)``
        (``source``: the provenance record of the weights).
    """
    weights, model_name, source = _pretrained_or_fallback(
        model_name, pretrained, 'CLIP image tower')
    if weights is None:
        from open_clip.model import _build_vision_tower
        cfg = _model_cfg(model_name)
        with seeded_init(seed):
            visual = _build_vision_tower(cfg['embed_dim'], cfg['vision_cfg'],
                                         cfg.get('quick_gelu', False))
        out_dim = cfg['embed_dim']
        source = random_source(seed, fallback_for=source,
                               **_model_label(model_name))
    else:
        model = _create_pretrained(model_name, weights)
        visual = model.visual
        out_dim = getattr(visual, 'output_dim', None) or _model_cfg(
            model_name)['embed_dim']
    mean, std, size = _preprocess(visual)
    return visual, dict(mean=mean, std=std, image_size=size,
                        output_dim=int(out_dim), source=source)


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
                    seed: Optional[int] = 0,
                    with_source: bool = False):
    """Build an open_clip text tower and its tokenizer.

    Returns:
        tuple[OpenCLIPTextTower, callable]: the tower and a tokenizer
        ``list[str] -> LongTensor (N, context_length)`` (and the weights'
        provenance record when ``with_source``).
    """
    import open_clip
    weights, model_name, source = _pretrained_or_fallback(
        model_name, pretrained, 'CLIP text tower')
    cfg = _model_cfg(model_name)
    text_cfg = dict(cfg['text_cfg'])
    if weights is None:
        from open_clip.model import _build_text_tower
        with seeded_init(seed):
            module = _build_text_tower(cfg['embed_dim'], text_cfg,
                                       cfg.get('quick_gelu', False))
        source = random_source(seed, fallback_for=source,
                               **_model_label(model_name))
    else:
        model = _create_pretrained(model_name, weights)
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
    tower = OpenCLIPTextTower(module, cfg['embed_dim'])
    return (tower, tokenizer, source) if with_source else (tower, tokenizer)
