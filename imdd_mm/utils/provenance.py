# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Where the weights of every frozen network came from.

Every frozen network of an imdd-mm model (the VAE, the U-Net in Stage 2,
the CLIP image tower of the implicit captioner, the text encoders) carries
a *source record*, a JSON-serialisable dict with a ``kind``:

=====================  ======================================================
``random``             ``seed`` (None: the global RNG), ``init``, ``model`` or
                       ``config_sha256`` (the architecture); ``fallback_for``
                       when pretrained weights were asked for but missing
``diffusers_folder``   ``path``, ``subfolder``, ``sha256`` of the weights file
``hub``                ``id``, ``subfolder``, ``sha256`` (from the HF cache)
``open_clip``          ``model`` (as built, e.g. ``ViT-B-16-quickgelu``),
                       ``tag``, ``path`` and ``sha256`` of the cached file
``file``               ``path``, ``sha256`` (a local weights file / folder)
``stage1_checkpoint``  ``path``, ``sha256``, ``ema``
=====================  ======================================================

Models expose them as ``model.frozen_sources() -> {dotted name: record}``
(:class:`imdd_mm.models.backbones.frozen.FrozenModulesMixin`); checkpoints
store them under ``meta['imdd_frozen_sources']`` (``FrozenSourcesHook``);
:func:`restore_frozen_sources` puts the Stage-1 checkpoint of a Stage-2
checkpoint back into a config that leaves it unset, and
:func:`check_frozen_sources` refuses a model whose frozen parts differ from
the ones a checkpoint was trained with, unless
``model.override_frozen_sources=True``.

Random frozen weights are an error unless ``model.allow_random_frozen=True``
(:data:`ALLOW_RANDOM_KEY`); pretrained weights are looked up only locally
(HF hub cache, a folder, open_clip's cache), never downloaded at build.
"""
import contextlib
import contextvars
import functools
import hashlib
import inspect
import json
import logging
import os
import os.path as osp
from typing import Any, Dict, Iterable, List, Mapping, Optional

from mmengine.logging import print_log

#: checkpoint ``meta`` key holding ``model.frozen_sources()``
FROZEN_SOURCES_KEY = 'imdd_frozen_sources'
#: checkpoint ``meta`` key: True when a frozen network was random
RANDOM_FROZEN_KEY = 'imdd_random_frozen'
#: the one switch that accepts random frozen weights
ALLOW_RANDOM_KEY = 'model.allow_random_frozen'
#: the switch that accepts frozen sources differing from a checkpoint's
OVERRIDE_KEY = 'model.override_frozen_sources'
SOURCE_KINDS = ('random', 'diffusers_folder', 'hub', 'open_clip', 'file',
                'stage1_checkpoint')


class FrozenWeightsUnavailable(RuntimeError):
    """Pretrained weights of a frozen network cannot be found locally."""


class FrozenSourceMismatch(ValueError):
    """A frozen network differs from the one a checkpoint recorded."""


# ---------------------------------------------------------------- hashing
_SHA_CACHE: Dict[tuple, str] = {}


def file_sha256(path: str, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file (cached per path, size and mtime).

    Raises:
        FileNotFoundError: naming ``path``.
    """
    path = osp.realpath(osp.expanduser(str(path)))
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: no such file')
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(chunk), b''):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


def _plain(obj: Any) -> Any:
    """JSON-ready copy: tuples -> lists, mappings -> sorted dicts."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in sorted(obj.items(),
                                                     key=lambda kv: str(
                                                         kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def config_sha256(config: Any) -> str:
    """Short (16 hex) sha256 of an architecture config's canonical JSON."""
    text = json.dumps(_plain(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def weights_file_sha256(folder: str,
                        names: Iterable[str]) -> Optional[str]:
    """sha256 of the first of ``names`` present in ``folder`` (a hub-cache
    blob is named by its sha256, which is used without reading it)."""
    for name in names:
        path = osp.join(folder, name)
        if osp.isfile(path):
            real = osp.realpath(path)
            blob = osp.basename(real)
            if '/blobs/' in real.replace(os.sep, '/') and len(blob) == 64:
                return blob
            return file_sha256(real)
    return None


# ---------------------------------------------------------------- records
def random_source(seed: Optional[int], **fields) -> dict:
    """A ``random`` record (``fields``: init, model, config_sha256, ...)."""
    src = dict(kind='random', seed=None if seed is None else int(seed))
    src.update({k: v for k, v in fields.items() if v is not None})
    return _plain(src)


def any_random_frozen(sources: Optional[Mapping[str, Mapping]]) -> bool:
    """Whether any record of ``{name: record}`` is ``kind='random'``."""
    return any(
        isinstance(s, Mapping) and s.get('kind') == 'random'
        for s in (sources or {}).values())


def random_names(sources: Optional[Mapping[str, Mapping]]) -> List[str]:
    return [k for k, s in (sources or {}).items()
            if isinstance(s, Mapping) and s.get('kind') == 'random']


def describe_source(src: Mapping) -> str:
    """One line, e.g. ``hub stable-diffusion-v1-5/... (vae) sha256 ab12..``."""
    kind = src.get('kind', '?')
    if kind == 'random':
        what = src.get('model') or src.get('config_sha256') or ''
        text = f'RANDOM (seed {src.get("seed")}'
        text += f', {what})' if what else ')'
        fb = src.get('fallback_for')
        if fb:
            text += f' instead of {describe_source(fb)}'
        return text
    parts = [kind]
    for key in ('id', 'pretrained', 'model', 'tag', 'path'):
        if src.get(key):
            parts.append(f'{key}={src[key]}')
    if src.get('subfolder'):
        parts.append(f'subfolder={src["subfolder"]}')
    if src.get('sha256'):
        parts.append(f'sha256={str(src["sha256"])[:12]}')
    if 'ema' in src:
        parts.append(f'ema={src["ema"]}')
    return ' '.join(parts)


def source_identity(src: Mapping) -> tuple:
    """What makes two records the same weights: the sha256 when known,
    else the kind's naming fields."""
    if src.get('sha256'):
        return ('sha256', src['sha256'], src.get('ema'), src.get('model'))
    kind = src.get('kind')
    if kind == 'random':
        return ('random', src.get('seed'), src.get('init'),
                src.get('model'), src.get('config_sha256'))
    if kind == 'hub':
        return ('hub', src.get('id'), src.get('subfolder'))
    if kind == 'open_clip':
        return ('open_clip', src.get('model'), src.get('tag'))
    return (kind, src.get('path'), src.get('subfolder'))


def same_source(a: Mapping, b: Mapping) -> bool:
    return source_identity(a) == source_identity(b)


def source_differences(current: Mapping[str, Mapping],
                       recorded: Mapping[str, Mapping],
                       pairs: Optional[Mapping[str, str]] = None
                       ) -> List[str]:
    """Lines ``name: built X, recorded Y`` for every record that differs.

    Args:
        current, recorded: ``{name: record}``.
        pairs: ``{recorded name: current name}``; default: the names both
            have.
    """
    if pairs is None:
        pairs = {k: k for k in recorded if k in current}
    lines = []
    for rec_name, cur_name in pairs.items():
        rec, cur = recorded.get(rec_name), current.get(cur_name)
        if rec is None or cur is None:
            continue
        if not same_source(cur, rec):
            lines.append(f'{cur_name}: this build has {describe_source(cur)}'
                         f'; recorded: {describe_source(rec)}')
    return lines


# ---------------------------------------------------------------- policy
_RANDOM_FALLBACK: contextvars.ContextVar = contextvars.ContextVar(
    'imdd_random_frozen_fallback', default=False)


@contextlib.contextmanager
def random_frozen_fallback(enabled: bool):
    """While building a model's parts: whether a missing pretrained frozen
    network may be replaced by a random one (recorded as such) instead of
    raising :class:`FrozenWeightsUnavailable` at once."""
    token = _RANDOM_FALLBACK.set(bool(enabled))
    try:
        yield
    finally:
        _RANDOM_FALLBACK.reset(token)


def random_fallback_enabled() -> bool:
    return bool(_RANDOM_FALLBACK.get())


def unavailable(what: str, looked_for: str, hint: str = '') -> \
        FrozenWeightsUnavailable:
    """The one error for missing pretrained frozen weights."""
    msg = (f'{what}: pretrained weights not found: looked for {looked_for}. '
           f'{hint + " " if hint else ""}Nothing is downloaded at build '
           'time. To run with RANDOM frozen weights instead (tests, tiny '
           f'models; numbers are then meaningless), set {ALLOW_RANDOM_KEY}'
           '=True (e.g. --cfg-options model.allow_random_frozen=True).')
    return FrozenWeightsUnavailable(msg)


def enforce_frozen_policy(owner: str, sources: Mapping[str, Mapping],
                          allow_random: bool) -> None:
    """Log every source; a random one is an error unless allowed, and a
    WARNING when allowed."""
    for name, src in sources.items():
        print_log(f'{owner}: frozen {name}: {describe_source(src)}',
                  logger='current', level=logging.INFO)
    names = random_names(sources)
    if not names:
        return
    listing = '; '.join(f'{n} = {describe_source(sources[n])}'
                        for n in names)
    if not allow_random:
        raise FrozenWeightsUnavailable(
            f'{owner}: frozen networks would be RANDOM: {listing}. Give '
            'their pretrained weights (or, for the Stage-2 U-Net, '
            'model.stage1_checkpoint=...), or accept random frozen weights '
            f'with {ALLOW_RANDOM_KEY}=True (tests, tiny models).')
    print_log(
        f'{owner}: RUNNING WITH RANDOM FROZEN WEIGHTS ({ALLOW_RANDOM_KEY}'
        f'=True): {listing}. Results of this model are not those of the '
        'pretrained networks.', logger='current', level=logging.WARNING)


def enforces_frozen_policy(init):
    """Decorator for the ``__init__`` of a top-level model taking
    ``allow_random_frozen``: its parts are built inside
    :func:`random_frozen_fallback` and, once built, every frozen source is
    logged and :func:`enforce_frozen_policy` applied."""
    default = inspect.signature(init).parameters[
        'allow_random_frozen'].default

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        allow = bool(kwargs.get('allow_random_frozen', default))
        with random_frozen_fallback(allow):
            init(self, *args, **kwargs)
        self.allow_random_frozen = allow
        enforce_frozen_policy(type(self).__name__, self.frozen_sources(),
                              allow)

    return wrapper


def check_stage1_sources(stage1_sources: Optional[Mapping[str, Mapping]],
                         current: Mapping[str, Mapping],
                         path: str,
                         override: bool = False) -> List[str]:
    """Compare the frozen networks a Stage-1 checkpoint was trained with
    (``'vae'``, ``'captioner.visual'``, ``'text_encoder.tower'``) with the
    Stage-2 build's (``current``, keyed by the same names).

    Raises:
        FrozenSourceMismatch: a network differs, unless ``override``.
    """
    if not stage1_sources:
        print_log(f'{path}: the Stage-1 checkpoint records no frozen '
                  'sources (written before imdd-mm recorded them); cannot '
                  'check that this build uses the same VAE / CLIP tower',
                  logger='current', level=logging.WARNING)
        return []
    diffs = source_differences(current, stage1_sources)
    if not diffs:
        return []
    _refuse_or_warn(
        f'the Stage-1 checkpoint {path} was trained with other frozen '
        'networks than this Stage-2 build (the U-Net would see latents or '
        'conditions it was never trained on): ' + ' | '.join(diffs),
        'Use the Stage-1 networks', override)
    return diffs


def _refuse_or_warn(text: str, advice: str, override: bool) -> None:
    """Raise :class:`FrozenSourceMismatch`, or warn under the override."""
    if not override:
        raise FrozenSourceMismatch(
            f'{text}. {advice}, or accept the difference with '
            f'{OVERRIDE_KEY}=True.')
    print_log(f'{text} ({OVERRIDE_KEY}=True: continuing)',
              logger='current', level=logging.WARNING)


# ---------------------------------------------------------------- files
def read_checkpoint_meta(path: str) -> dict:
    """The ``meta`` dict of an mmengine checkpoint ({} when absent)."""
    from imdd_mm.utils.checkpoint import safe_torch_load
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    try:
        ckpt = safe_torch_load(path, map_location='cpu', mmap=True)
    except (RuntimeError, ValueError, TypeError):
        ckpt = safe_torch_load(path, map_location='cpu')
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    return dict(meta or {})


def checkpoint_frozen_sources(path: str) -> Optional[dict]:
    """``meta['imdd_frozen_sources']`` of a checkpoint, or None."""
    sources = read_checkpoint_meta(path).get(FROZEN_SOURCES_KEY)
    return dict(sources) if sources else None


def check_frozen_sources(current: Mapping[str, Mapping],
                         recorded: Optional[Mapping[str, Mapping]],
                         override: bool = False,
                         source: str = '<checkpoint>') -> List[str]:
    """Refuse a model whose frozen networks differ from a checkpoint's.

    Returns:
        list[str]: the differences (empty when they agree).

    Raises:
        FrozenSourceMismatch: unless ``override``.
    """
    if not recorded:
        return []
    diffs = source_differences(current, recorded)
    missing = sorted(set(recorded) - set(current))
    diffs += [f'{n}: recorded {describe_source(recorded[n])}, absent from '
              'this build' for n in missing]
    if not diffs:
        return []
    _refuse_or_warn(
        f'{source} was written by a model with other frozen networks than '
        'this build: ' + ' | '.join(diffs), 'Fix the config', override)
    return diffs


def restore_frozen_sources(cfg, checkpoint_path: str,
                           override: bool = False):
    """Fill a config's unset frozen sources from a checkpoint's meta.

    A Stage-2 checkpoint holds only the head; its frozen U-Net (and
    captioner MLP) come from the Stage-1 checkpoint recorded in
    ``meta['imdd_frozen_sources']``. When ``cfg.model.stage1_checkpoint``
    is unset it is set to the recorded path (the file must still be there
    with the recorded sha256); a config naming another Stage-1 checkpoint
    (other sha256) is an error unless ``override``. The other frozen
    networks are compared when the model is built and the checkpoint
    loaded (``FrozenSourcesHook``, :func:`check_frozen_sources`).

    Args:
        cfg (mmengine.Config): the config; ``cfg.model`` is modified.
        checkpoint_path (str): the checkpoint to be loaded.
        override (bool): accept a differing Stage-1 checkpoint.

    Returns:
        ConfigDict: ``cfg.model``.
    """
    model_cfg = cfg.model
    recorded = checkpoint_frozen_sources(checkpoint_path)
    ours = 'allow_random_frozen' in model_cfg or \
        'stage1_checkpoint' in model_cfg
    if not recorded and not ours:
        return model_cfg
    if not recorded:
        print_log(f'{checkpoint_path}: no recorded frozen sources (written '
                  'before imdd-mm recorded them, or not an imdd-mm model); '
                  'the config alone decides the frozen networks',
                  logger='current', level=logging.WARNING)
        return model_cfg
    stage1 = [s for s in recorded.values()
              if s.get('kind') == 'stage1_checkpoint']
    if not stage1:
        return model_cfg
    rec = stage1[0]
    if 'stage1_checkpoint' not in model_cfg:
        return model_cfg
    given = model_cfg.get('stage1_checkpoint')
    if not given:
        path = rec.get('path')
        if not path or not osp.exists(path):
            raise FileNotFoundError(
                f'{checkpoint_path} was trained on the Stage-1 checkpoint '
                f'{path} (sha256 {rec.get("sha256")}), which is not there '
                'any more; pass its new location with --cfg-options '
                'model.stage1_checkpoint=PATH')
        model_cfg.stage1_checkpoint = path
        if 'ema' in rec and 'stage1_use_ema' in model_cfg:
            model_cfg.stage1_use_ema = bool(rec['ema'])
        print_log(f'{checkpoint_path}: frozen U-Net restored from the '
                  f'recorded Stage-1 checkpoint {path}', logger='current',
                  level=logging.INFO)
        given = path
    sha = stage1_sha256(given)
    if rec.get('sha256') and sha != rec['sha256']:
        _refuse_or_warn(
            f'{checkpoint_path} was trained on the Stage-1 checkpoint '
            f'{rec.get("path")} (sha256 {rec["sha256"]}), but the config '
            f'gives {given} (sha256 {sha})',
            'Give the recorded Stage-1 checkpoint', override)
    return model_cfg


def prepare_frozen_sources(cfg, checkpoint_path: Optional[str]):
    """What the tools do before building a model from ``cfg``: make sure
    ``FrozenSourcesHook`` runs (checkpoint meta, load checks, results) and
    restore the frozen sources of ``checkpoint_path`` (``load_from`` /
    ``--resume`` / the checkpoint to test), honouring
    ``model.override_frozen_sources``."""
    hooks = cfg.get('default_hooks')
    if hooks is None:
        cfg.default_hooks = dict()
        hooks = cfg.default_hooks
    if 'frozen_sources' not in hooks:
        hooks['frozen_sources'] = dict(type='mmdet.FrozenSourcesHook')
    if checkpoint_path and osp.isfile(osp.expanduser(str(checkpoint_path))) \
            and cfg.get('model') is not None:
        restore_frozen_sources(
            cfg, checkpoint_path,
            override=bool(cfg.model.get('override_frozen_sources', False)))
    return cfg


def stage1_sha256(path: str) -> str:
    """sha256 of a Stage-1 checkpoint file, or of the U-Net weights of an
    exported Stage-1 folder."""
    path = osp.expanduser(str(path))
    if osp.isdir(path):
        sha = weights_file_sha256(
            osp.join(path, 'unet'), ('diffusion_pytorch_model.safetensors',
                                     'diffusion_pytorch_model.bin'))
        if sha is None:
            raise FileNotFoundError(f'{path}: no unet/ weights file')
        return sha
    return file_sha256(path)
