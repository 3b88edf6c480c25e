# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Provenance of a test run: what produced a number in a results table.

``tools/test.py`` writes ``<work_dir>/<timestamp>/result.json``::

    {"metrics": {...},
     "record": {"config": ..., "config_sha256": ..., "checkpoint": ...,
                "checkpoint_sha256": ..., "cfg_options": {...},
                "data_files": [{"path", "sha256", "split"}, ...],
                "train_samples": {...}, "git_commit": ..., "git_dirty": ...,
                "date": ..., "device": ..., "frozen_sources": [...],
                "command": [...]}}

``tools/analysis_tools/benchmark_table.py`` computes the same record
*without* running (:func:`expected_record`) and reuses a result only when
:func:`record_mismatches` finds no difference in :data:`MATCH_KEYS`.

The resolved config is the config file after ``--cfg-options`` and after
the run-time variables (:func:`resolve_run_vars`): a string ``'${category}'``
anywhere in a config is replaced by the config's top-level ``category`` when
the run starts, so ``--cfg-options category=cable`` changes every place
that uses it (``{{_base_.category}}`` and ``category + '/'`` are fixed
when the file is parsed and do not follow the override).
"""
import argparse
import datetime
import hashlib
import json
import os
import os.path as osp
import subprocess
from typing import Any, Dict, List, Optional, Sequence

__all__ = [
    'RESULT_FILE', 'MATCH_KEYS', 'TRAIN_MATCH_KEYS', 'RUN_VAR_KEYS', 'resolve_run_vars',
    'parse_cfg_options', 'load_run_config', 'config_sha256', 'file_sha256',
    'dataset_files', 'training_samples', 'git_state', 'device_info',
    'collect_frozen_sources', 'build_run_record', 'expected_record',
    'record_mismatches', 'write_result', 'load_result'
]

RESULT_FILE = 'result.json'
#: record fields that must be equal for a stored result to be reused
#: (``date`` and ``device`` are recorded, not matched)
MATCH_KEYS = ('config', 'config_sha256', 'checkpoint', 'checkpoint_sha256',
              'cfg_options', 'data_files', 'git_commit')
#: the same for a training run (its checkpoint is its output)
TRAIN_MATCH_KEYS = ('config', 'config_sha256', 'cfg_options', 'train_files',
                    'git_commit')
#: run-time variables: ``'${<key>}'`` in a config string -> ``cfg[<key>]``
RUN_VAR_KEYS = ('category', )
#: config keys that never change a result (where outputs go, launcher)
_VOLATILE_KEYS = ('work_dir', 'launcher', 'load_from', 'resume')


# ------------------------------------------------------------ the config
def _substitute(value: Any, variables: Dict[str, str], where: str) -> Any:
    if isinstance(value, str):
        for key, sub in variables.items():
            marker = '${' + key + '}'
            if marker in value:
                if sub is None:
                    raise KeyError(
                        f'{where}: {value!r} uses {marker} but the config '
                        f'sets no top-level `{key}`; pass --cfg-options '
                        f'{key}=<name>')
                value = value.replace(marker, str(sub))
        return value
    if isinstance(value, dict):
        for k in list(value.keys()):
            value[k] = _substitute(value[k], variables, f'{where}.{k}')
        return value
    if isinstance(value, list):
        for i, v in enumerate(value):
            value[i] = _substitute(v, variables, f'{where}[{i}]')
        return value
    if isinstance(value, tuple):
        items = [_substitute(v, variables, f'{where}[{i}]')
                 for i, v in enumerate(value)]
        if any(a is not b for a, b in zip(items, value)):
            return type(value)(items)
    return value


def resolve_run_vars(cfg) -> Any:
    """Replace ``'${category}'`` in every string of ``cfg`` (in place) by
    ``cfg.category``, which ``--cfg-options category=<name>`` may have
    changed. Call after ``merge_from_dict``.

    Args:
        cfg (mmengine.Config): the config.

    Returns:
        the same ``cfg``.

    Raises:
        KeyError: a string uses ``${category}`` but the config has none.
    """
    variables = {k: cfg.get(k) for k in RUN_VAR_KEYS}
    for key in list(cfg.keys()):
        if key in RUN_VAR_KEYS:
            continue
        value = cfg[key]
        new = _substitute(value, variables, key)
        if new is not value:  # strings and tuples are replaced, not edited
            cfg[key] = new
    return cfg


def parse_cfg_options(options: Sequence[str]) -> dict:
    """Parse ``key=value`` strings exactly as ``--cfg-options`` does
    (mmengine's ``DictAction``)."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    if not options:
        return {}
    return vars(parser.parse_args(['--cfg-options', *options])).get(
        'cfg_options') or {}


def load_run_config(config: str, cfg_options: Optional[dict] = None):
    """Config as a run resolves it: file, then overrides, then run-time
    variables."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return resolve_run_vars(cfg)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=repr))


def config_sha256(cfg) -> str:
    """sha256 of the resolved config (keys in sorted order), without the
    keys that only say where outputs go (``work_dir``, ``launcher``,
    ``load_from``, ``resume``)."""
    data = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    data = {k: v for k, v in data.items() if k not in _VOLATILE_KEYS}
    text = json.dumps(_jsonable(data), sort_keys=True)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


_SHA_CACHE: Dict[tuple, str] = {}


def file_sha256(path: str) -> Optional[str]:
    """sha256 of a file (cached per path, size and mtime); ``None`` when
    the file does not exist."""
    if not osp.isfile(path):
        return None
    st = os.stat(path)
    key = (osp.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


# ------------------------------------------------------------- the data
def _datasets(node: Any) -> List[dict]:
    """Leaf dataset configs below a dataloader's ``dataset`` (wrappers'
    ``dataset`` / ``datasets`` are unwrapped)."""
    if not isinstance(node, dict):
        return []
    if 'datasets' in node:
        return [d for sub in node['datasets'] for d in _datasets(sub)]
    if 'dataset' in node:
        return _datasets(node['dataset'])
    return [node]


def _ann_path(ds: dict) -> Optional[str]:
    ann = ds.get('ann_file')
    if not ann:
        return None
    root = ds.get('data_root') or ''
    return ann if osp.isabs(ann) else osp.join(root, ann)


def dataset_files(cfg, splits: Sequence[str] = ('test', )) -> List[dict]:
    """Annotation files of the ``<split>_dataloader`` datasets and the
    ``<split>_evaluator`` ``ann_file`` s, with their sha256."""
    files, seen = [], set()
    for split in splits:
        paths = [_ann_path(d) for d in _datasets(
            (cfg.get(f'{split}_dataloader') or {}).get('dataset'))]
        evaluator = cfg.get(f'{split}_evaluator') or []
        for ev in evaluator if isinstance(evaluator, list) else [evaluator]:
            if isinstance(ev, dict) and ev.get('ann_file'):
                paths.append(ev['ann_file'])
        for path in paths:
            if path and (split, path) not in seen:
                seen.add((split, path))
                files.append(dict(split=split, path=osp.normpath(path),
                                  sha256=file_sha256(path)))
    return files


def training_samples(cfg) -> Optional[dict]:
    """Training images the config's ``train_dataloader`` uses, counted from
    its COCO file(s) with the dataset's filters (``file_prefix``,
    ``normality``, ``max_images``): ``images``, ``normal``, ``defective``
    and ``per_class`` (images showing each category; ``min_per_class``);
    ``training_free=True`` (0 images) when the config trains nothing
    (``train_cfg`` or ``train_dataloader`` is None). ``None`` when the
    training file is not a readable COCO file."""
    if cfg.get('train_dataloader') is None or cfg.get('train_cfg') is None:
        return dict(images=0, normal=0, defective=0, per_class={},
                    min_per_class=0, files=[], training_free=True)
    leaves = _datasets((cfg.get('train_dataloader') or {}).get('dataset'))
    if not leaves:
        return None
    total = dict(images=0, normal=0, defective=0, per_class={}, files=[])
    for ds in leaves:
        path = _ann_path(ds)
        if not path or not path.endswith('.json') or not osp.isfile(path):
            return None
        with open(path) as f:
            coco = json.load(f)
        if not isinstance(coco, dict) or 'images' not in coco:
            return None
        names = {c['id']: c['name'] for c in coco.get('categories', [])}
        cats_of: Dict[Any, set] = {}
        for a in coco.get('annotations', []):
            cats_of.setdefault(a['image_id'], set()).add(a['category_id'])
        prefix = ds.get('file_prefix')
        normality = ds.get('normality')
        images = [
            im for im in coco['images']
            if (not prefix or str(im['file_name']).replace(
                os.sep, '/').startswith(prefix))
        ]
        if normality is not None:
            want = normality == 'normal'
            images = [im for im in images
                      if bool(im.get('is_normal')) == want]
        if ds.get('max_images') is not None:
            images = images[:int(ds['max_images'])]
        total['files'].append(osp.normpath(path))
        for im in images:
            total['images'] += 1
            cats = cats_of.get(im['id'], set())
            if im.get('image_label') is not None and not cats:
                cats = {im['image_label']}
            if cats:
                total['defective'] += 1
            else:
                total['normal'] += 1
            for c in cats:
                name = names.get(c, str(c))
                total['per_class'][name] = total['per_class'].get(name, 0) + 1
    per = total['per_class']
    total['min_per_class'] = min(per.values()) if per else 0
    return total


# ------------------------------------------------------ code and device
def git_state(path: Optional[str] = None) -> dict:
    """``commit`` (HEAD) and ``dirty`` (uncommitted changes to tracked
    files) of the repository holding ``path`` (default: this package)."""
    path = path or osp.dirname(osp.abspath(__file__))
    try:
        commit = subprocess.run(
            ['git', '-C', path, 'rev-parse', 'HEAD'], capture_output=True,
            text=True, timeout=20).stdout.strip() or None
        dirty = bool(subprocess.run(
            ['git', '-C', path, 'status', '--porcelain',
             '--untracked-files=no'], capture_output=True, text=True,
            timeout=20).stdout.strip()) if commit else None
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return dict(commit=commit, dirty=dirty)


def device_info() -> str:
    """``'cuda:<name> x<count>'`` or ``'cpu (<machine>, <n> cores)'``;
    CUDA is asked only when torch is already imported (a test run always
    has it; the table tool does not need it)."""
    import platform
    import sys
    torch = sys.modules.get('torch')
    if torch is not None and torch.cuda.is_available():
        return (f'cuda:{torch.cuda.get_device_name(0)} '
                f'x{torch.cuda.device_count()}')
    return f'cpu ({platform.machine()}, {os.cpu_count()} cores)'


def collect_frozen_sources(model: Any = None,
                           checkpoint_meta: Optional[dict] = None) -> list:
    """Where the frozen networks' weights came from: ``model.frozen_sources()``
    when the model has it (the DDP wrapper is unwrapped), else the
    checkpoint's ``meta['imdd_frozen_sources']``; ``[]`` when neither."""
    model = getattr(model, 'module', model)
    fn = getattr(model, 'frozen_sources', None)
    sources = fn() if callable(fn) else None
    if sources is None and checkpoint_meta:
        sources = checkpoint_meta.get('imdd_frozen_sources')
    if sources is None:
        return []
    if isinstance(sources, dict):
        sources = [dict(name=k, **v) if isinstance(v, dict) else
                   dict(name=k, source=v) for k, v in sources.items()]
    return _jsonable(list(sources))


# ------------------------------------------------------------ the record
def _checkpoint_fields(checkpoint: Optional[str]) -> dict:
    if not checkpoint or str(checkpoint).lower() == 'none':
        return dict(checkpoint='none', checkpoint_sha256=None)
    return dict(checkpoint=osp.normpath(checkpoint),
                checkpoint_sha256=file_sha256(checkpoint))


def _static_fields(cfg, config: str, checkpoint: Optional[str],
                   cfg_options: Optional[dict]) -> dict:
    record = dict(config=osp.normpath(config),
                  config_sha256=config_sha256(cfg))
    record.update(_checkpoint_fields(checkpoint))
    record['cfg_options'] = _jsonable(cfg_options or {})
    record['data_files'] = dataset_files(cfg, ('test', ))
    record['train_files'] = dataset_files(cfg, ('train', ))
    record['train_samples'] = training_samples(cfg)
    git = git_state()
    record['git_commit'] = git['commit']
    record['git_dirty'] = git['dirty']
    return record


def build_run_record(cfg, config: str, checkpoint: Optional[str],
                     cfg_options: Optional[dict] = None, model: Any = None,
                     checkpoint_meta: Optional[dict] = None,
                     command: Optional[Sequence[str]] = None) -> dict:
    """The provenance record of a finished test run.

    Args:
        cfg (mmengine.Config): the resolved config (after overrides and
            :func:`resolve_run_vars`).
        config (str): config file path as given on the command line.
        checkpoint (str, optional): checkpoint path or ``'none'``.
        cfg_options (dict, optional): the parsed ``--cfg-options``.
        model: the tested model (for ``frozen_sources()``).
        checkpoint_meta (dict, optional): the checkpoint's ``meta``.
        command (list[str], optional): the command line.
    """
    record = _static_fields(cfg, config, checkpoint, cfg_options)
    record['date'] = datetime.datetime.now(
        datetime.timezone.utc).isoformat(timespec='seconds')
    record['device'] = device_info()
    record['frozen_sources'] = collect_frozen_sources(model, checkpoint_meta)
    if command is not None:
        record['command'] = list(command)
    return record


def expected_record(config: str, checkpoint: Optional[str],
                    cfg_options: Optional[dict] = None) -> dict:
    """The :data:`MATCH_KEYS` fields a run of ``tools/test.py CONFIG
    CHECKPOINT --cfg-options ...`` would record now, without running it.
    ``cfg_options`` are parsed like the command line's."""
    cfg = load_run_config(config, cfg_options)
    return _static_fields(cfg, config, checkpoint, cfg_options)


def record_mismatches(record: Optional[dict], expected: dict,
                      keys: Sequence[str] = MATCH_KEYS) -> List[str]:
    """Human-readable differences between a stored ``record`` and the
    ``expected`` one (empty = the result may be reused)."""
    if not record:
        return ['the result has no provenance record']
    out = []
    for key in keys:
        if _jsonable(record.get(key)) != _jsonable(expected.get(key)):
            out.append(f'{key}: stored {record.get(key)!r} != now '
                       f'{expected.get(key)!r}')
    for field in ('data_files', 'train_files'):
        if field in keys and any(f.get('sha256') is None
                                 for f in expected.get(field) or []):
            out.append(f'{field}: an annotation file is missing now')
    for src in record.get('frozen_sources') or []:
        path, sha = (src.get('path'), src.get('sha256')) if isinstance(
            src, dict) else (None, None)
        if path and sha and osp.isfile(path) and file_sha256(path) != sha:
            out.append(f'frozen weights {path} changed since the run')
    return out


def write_result(path: str, metrics: dict, record: dict) -> str:
    """Write ``{"metrics", "record"}`` atomically to ``path``."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(dict(metrics=_jsonable(metrics), record=record), f,
                  indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path


def load_result(path: str) -> dict:
    """Read a result file; ``ValueError`` naming it when malformed."""
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f'{path}: cannot read result: {e}') from e
    if not isinstance(data, dict) or not isinstance(data.get('metrics'),
                                                    dict):
        raise ValueError(f'{path}: not a result file (needs "metrics" and '
                         '"record")')
    return data
