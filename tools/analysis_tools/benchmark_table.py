# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Run or collect test results and write the IMDD-1M paper's tables.

For every entry of a spec (YAML, JSON or mmengine ``.py``) this tool runs
``tools/test.py CONFIG CHECKPOINT --work-dir WD [--cfg-options ...]``
(after ``tools/train.py CONFIG --work-dir WD/train ...`` for entries with
``train: true``) and writes each table as Markdown and CSV side by side in
``--out-dir``, the exact commands above each Markdown table and the
provenance of every number below it.

Stored results are reused only when their provenance matches the command
(``WD/<timestamp>/result.json`` written by ``tools/test.py``: config path
and sha256 of the resolved config, checkpoint path and sha256,
``cfg_options``, annotation files and their sha256, git commit; see
:mod:`imdd_mm.utils.run_record`). A result that does not match is stale:
it is rerun, or with ``--collect-only`` its cell stays empty and the row is
listed as missing. Means are over complete rows; a partial mean is marked
``*``.

Per-category protocol (MVTec AD, VisA, MVTec AD 2, BTAD, any folder
dataset with several products): an entry (or table) with ``categories``
(a list, or ``config`` = the config's top-level ``categories``) is run once
per category with ``--cfg-options category=<name>`` (``category_key``
changes the key): the configs' ``'${category}'`` strings (the datasets'
``file_prefix``, the CLIP baselines' object name) follow it when the run
starts. Each category fits/trains on its own training images
(``train: true``) and is tested on its own full test split, in its own
work dir ``WD/<category>``, so an interrupted table resumes where it
stopped. Tables show one row per category and the mean over categories;
``protocol: pooled`` keeps a single run over all categories, labelled
"(pooled)".

Table kinds (paper table in brackets; default metric keys are those of
imdd-mm's registered metrics, values in [0, 1], printed in %):

=================  =========================================================
``classification`` [Table 3] Dataset, # Defect Types, Accuracy; average row
``detection``      [Table 4] Method, mAP@0.5, mAP@0.75, Avg IoU
``segmentation``   [Tables 5, 11] Dataset, Accuracy, F1, IoU, Dice; average
``anomaly``        [Table 6] methods as columns: P-AUC-ROC, AUC-PRO, #samples
``ablation``       [Table 7] Model Configuration, Acc, F1, IoU
``cross_dataset``  [Table 12] Train -> Test, Acc, IoU; ``test_vocabulary``
                   (names, or a categories.json / COCO json / .txt file) is
                   passed as ``--cfg-options <vocabulary_key>=[...]``
``timestep``       timestep sweep: one run per ``timesteps`` value through
                   ``--cfg-options model.backbone.timestep=<t>``
``data_efficiency`` [Figure 11, Table 13] one curve per pre-training
                   strategy over ``samples`` (N per class; ``{n}`` in config /
                   checkpoint / work_dir / cfg_options is replaced by N): a
                   table, a PNG curve, and the samples needed to reach
                   ``target`` accuracy (linear interpolation) with the
                   efficiency relative to the ``reference`` strategy;
                   ``seeds`` repeats runs (below)
=================  =========================================================

Spec example (YAML)::

    work_dir: work_dirs/benchmark        # per-run work dirs go below
    tables:
      - kind: classification
        title: Table 3. Classification accuracy
        entries:
          - {name: MVTec AD, defect_types: 90,
             config: configs/imdd/stage2_mvtec.py,
             checkpoint: work_dirs/stage2_mvtec/epoch_50.pth}
      - kind: cross_dataset
        entries:
          - {name: MVTec AD -> VisA, config: configs/imdd/stage2_visa.py,
             checkpoint: work_dirs/stage2_mvtec/epoch_50.pth,
             test_vocabulary: data/visa/categories.json}
      - kind: data_efficiency
        samples: [25, 50, 100, 200, 350]
        target: 0.95
        entries:
          - {name: IMDD-1M, config: configs/imdd/stage2_mvtec_n{n}.py,
             checkpoint: work_dirs/mvtec_n{n}/epoch_50.pth}

Entry keys: ``name``, ``config``, ``checkpoint`` (``{category}`` is
replaced per category; ``none`` for training-free methods), optional
``train`` (true: train per run first, test the last checkpoint),
``cfg_options`` (dict), ``work_dir``, ``results`` (a result file or work
dir to collect from instead of running; per category a dict category ->
file), ``metric_keys`` (column -> result key), ``scale`` (default 100; 1
when the results are already in %), ``categories``, ``category_key``,
``protocol`` (``per_category`` / ``pooled``), ``val_threshold``
(below). Table keys: ``kind``,
``name`` (file stem), ``title``, ``metrics`` (list of ``[column, key]``),
``categories``, ``protocol``, ``entries``. Training-set sizes ("# Training
Samples") are counted from the training file each run's config uses.

Seeds (``data_efficiency``): ``seeds`` (table or entry key) is a list of
ints, used at every N, or a dict N -> list (N not listed: ``[0]``). Each
seed is its own run; ``{seed}`` and ``{seed_suffix}`` (``''`` for seed 0,
``'_seed<S>'`` otherwise, so seed 0 keeps the unseeded names) are replaced
like ``{n}``, and ``results`` may map N -> seed -> file. A cell over
several seeds shows mean ± sample standard deviation and the number of
seeds; the ``<name>_per_seed`` table lists every seed's value.

Thresholds chosen on a validation split (entry key ``val_threshold``:
``cfg_options``, ``metric``, ``key``): the run is first tested with
``cfg_options`` added (the validation split, e.g. DefectSegMetric's
``thr_sweep``) in ``<work_dir>/val_threshold``; the value of ``metric`` in
that result (e.g. ``seg/best_iou_thr``) is then passed to the test run as
``--cfg-options <key>=<value>`` (e.g. ``model.test_cfg.sem_seg_thr``) and
shown as the metric ``val_threshold/<metric>``. Both commands are printed.

Usage:
    python tools/analysis_tools/benchmark_table.py SPEC --out-dir DIR \
        [--collect-only] [--rerun] [--dry-run] [--only NAME ...] [--gpus N]
        [--train-script tools/train.py]
"""
import argparse
import csv
import importlib.util
import io
import json
import math
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
from typing import Callable, Dict, List, Optional, Sequence


def _load_run_record():
    """``imdd_mm.utils.run_record`` loaded from its file: the table tool
    needs only it (and mmengine), not torch and the model registries."""
    path = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..',
                    'imdd_mm', 'utils', 'run_record.py')
    spec = importlib.util.spec_from_file_location('_imdd_run_record', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_record = _load_run_record()
TRAIN_MATCH_KEYS = run_record.TRAIN_MATCH_KEYS
TIMESTAMP_RE = re.compile(r'^\d{8}_\d{6}$')
MISSING = '–'

# kind -> (default file stem, default title, default [column, key] list)
KINDS: Dict[str, tuple] = {
    'classification': ('table3_classification',
                       'Table 3. Classification accuracy across multiple '
                       'industrial datasets.',
                       [['Accuracy (%)', 'cls/accuracy']]),
    'detection': ('table4_detection',
                  'Table 4. Object detection (boxes derived from masks).',
                  [['mAP@0.5 (%)', 'det/mAP_50'],
                   ['mAP@0.75 (%)', 'det/mAP_75'],
                   ['Avg IoU (%)', 'det/avg_iou']]),
    'segmentation': ('table5_segmentation',
                     'Table 5. Pixel-level segmentation results.',
                     [['Accuracy (%)', 'seg/acc'], ['mAcc (%)', 'seg/mAcc'],
                      ['F1 (%)', 'seg/f1'], ['IoU (%)', 'seg/iou'],
                      ['Dice (%)', 'seg/dice']]),
    'anomaly': ('table6_anomaly',
                'Table 6. Comparison with anomaly detection methods.',
                [['P-AUC-ROC', 'anomaly/P-AUROC'],
                 ['AUC-PRO', 'anomaly/AUPRO']]),
    'ablation': ('table7_ablation', 'Table 7. Architectural ablation study.',
                 [['Acc (%)', 'seg/acc'], ['mAcc (%)', 'seg/mAcc'],
                  ['F1 (%)', 'seg/f1'], ['IoU (%)', 'seg/iou']]),
    'cross_dataset': ('table12_cross_dataset',
                      'Table 12. Zero-shot cross-dataset transfer.',
                      [['Acc (%)', 'seg/acc'], ['IoU (%)', 'seg/iou']]),
    'timestep': ('timestep_sweep', 'Diffusion timestep sweep.',
                 [['Acc (%)', 'seg/acc'], ['IoU (%)', 'seg/iou']]),
    'data_efficiency': ('data_efficiency',
                        'Figure 11. Accuracy vs. training samples per class.',
                        [['Accuracy (%)', 'cls/accuracy']]),
}
FIRST_COLUMN = {
    'classification': 'Dataset', 'detection': 'Method',
    'segmentation': 'Dataset', 'anomaly': 'Method',
    'ablation': 'Model Configuration', 'cross_dataset': 'Train → Test',
    'timestep': 'Timestep t', 'data_efficiency': 'Pre-training'
}
AVERAGE_KINDS = ('classification', 'segmentation')


class SpecError(ValueError):
    """A malformed benchmark spec."""


# ------------------------------------------------------------------ spec
def load_spec(path: str) -> dict:
    """Read a YAML / JSON / mmengine-``.py`` spec into a dict."""
    if not osp.isfile(path):
        raise SpecError(f'{path}: spec file not found')
    ext = osp.splitext(path)[1].lower()
    try:
        if ext in ('.yaml', '.yml'):
            import yaml
            with open(path) as f:
                spec = yaml.safe_load(f)
        elif ext == '.json':
            with open(path) as f:
                spec = json.load(f)
        elif ext == '.py':
            from mmengine.config import Config
            spec = Config.fromfile(path).to_dict()
        else:
            raise SpecError(f'{path}: spec must be .yaml, .yml, .json or .py')
    except SpecError:
        raise
    except Exception as e:  # parse errors
        raise SpecError(f'{path}: cannot parse spec: {e}') from e
    if not isinstance(spec, dict) or not isinstance(spec.get('tables'), list):
        raise SpecError(f"{path}: spec needs a list under 'tables'")
    for i, table in enumerate(spec['tables']):
        if table.get('kind') not in KINDS:
            raise SpecError(f'{path}: tables[{i}].kind must be one of '
                            f'{sorted(KINDS)}, got {table.get("kind")!r}')
        if not table.get('entries'):
            raise SpecError(f'{path}: tables[{i}] has no entries')
        for j, entry in enumerate(table['entries']):
            if 'name' not in entry:
                raise SpecError(f'{path}: tables[{i}].entries[{j}] has no '
                                'name')
            if 'results' not in entry and not (
                    entry.get('config') and (entry.get('checkpoint')
                                             or entry.get('train') is True)):
                raise SpecError(
                    f'{path}: tables[{i}].entries[{j}] ({entry["name"]}) '
                    'needs config and checkpoint (or train: true), or '
                    'results')
    return spec


def slugify(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9._-]+', '_', str(text)).strip('_') or 'run'


def read_vocabulary(value) -> List[str]:
    """Class names from a list or from a categories.json / COCO json / txt
    file (one name per line)."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    path = str(value)
    if not osp.isfile(path):
        raise SpecError(f'{path}: test_vocabulary file not found')
    if path.endswith('.json'):
        with open(path) as f:
            data = json.load(f)
        if isinstance(data, dict):
            data = data.get('categories', data.get('classes'))
        if not isinstance(data, list):
            raise SpecError(f'{path}: expected a list of categories or a '
                            "COCO file with 'categories'")
        cats = sorted(data, key=lambda c: c.get('id', 0)) if data and \
            isinstance(data[0], dict) else data
        return [c['name'] if isinstance(c, dict) else str(c) for c in cats]
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


# ------------------------------------------------------------------ runs
class Run:
    """One ``tools/test.py`` invocation (or its collected results), with
    an optional ``tools/train.py`` run before it (entry ``train: true``:
    per-category fitting)."""

    def __init__(self, name: str, entry: dict, work_dir: str,
                 cfg_options: Optional[dict] = None,
                 fmt: Optional[dict] = None,
                 category: Optional[str] = None) -> None:
        fmt = dict(fmt or {})
        if category is not None:
            fmt.setdefault('category', category)

        def sub(value):
            return value.format(**fmt) if isinstance(value, str) else value

        self.name = name
        self.entry = entry
        self.category = category
        self.config = sub(entry.get('config'))
        self.train = entry.get('train') is True  # cross_dataset: a name
        self.checkpoint = sub(entry.get('checkpoint')) or (
            None if self.train else 'none')
        self.work_dir = sub(entry.get('work_dir')) or work_dir
        self.train_dir = osp.join(self.work_dir, 'train')
        self.results = sub(entry.get('results'))
        self.cfg_options = {k: sub(v) for k, v in
                            (entry.get('cfg_options') or {}).items()}
        self.cfg_options.update(cfg_options or {})
        self.seed = fmt.get('seed')
        self.metrics: Optional[dict] = None
        self.record: Optional[dict] = None
        self.source = ''
        self.missing = ''  # why there are no metrics (collect mode)
        self.verified = False  # provenance checked against the command


def _format_option(value) -> str:
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(_format_option(v) for v in value) + ']'
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return str(value)  # DictAction parses None / True / False
    return json.dumps(value)


def option_strings(run: Run) -> List[str]:
    """``key=value`` strings of the run's ``--cfg-options``."""
    return [f'{k}={_format_option(v)}'
            for k, v in sorted(run.cfg_options.items())]


_SAFE_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_\-]*$')


def vocabulary_needs_config(names: Sequence[str]) -> bool:
    """mmengine's ``DictAction`` strips spaces and parses numbers, so names
    that are not plain identifiers go through an override config."""
    return not all(
        _SAFE_NAME.match(n) and n.lower() not in ('true', 'false', 'none')
        for n in names)


def write_override_config(path: str, base_config: str, key: str,
                          value) -> str:
    """Write ``path`` inheriting ``base_config`` and setting dotted ``key``."""
    parts = key.split('.')
    body = repr(value)
    for part in reversed(parts[1:]):
        body = f'dict({part}={body})'
    text = ('# Generated by tools/analysis_tools/benchmark_table.py\n'
            f'_base_ = [{osp.abspath(base_config)!r}]\n'
            f'{parts[0]} = {body}\n')
    os.makedirs(osp.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def build_command(run: Run, python: str, test_script: str,
                  gpus: int = 1) -> List[str]:
    if gpus > 1:
        cmd = [python, '-m', 'torch.distributed.run',
               f'--nproc_per_node={gpus}', test_script]
    else:
        cmd = [python, test_script]
    cmd += [run.config, run.checkpoint or '<last checkpoint of training>',
            '--work-dir', run.work_dir]
    if run.cfg_options:
        cmd.append('--cfg-options')
        cmd += option_strings(run)
    if gpus > 1:
        cmd += ['--launcher', 'pytorch']
    return cmd


def build_train_command(run: Run, python: str,
                        train_script: str) -> List[str]:
    """``tools/train.py CONFIG --work-dir <work_dir>/train --cfg-options``
    (single process: memory-bank fits are not gathered across ranks)."""
    cmd = [python, train_script, run.config, '--work-dir', run.train_dir]
    if run.cfg_options:
        cmd.append('--cfg-options')
        cmd += option_strings(run)
    return cmd


def _load_metrics_json(path: str) -> tuple:
    """``(metrics, record)`` of a result file (``{"metrics", "record"}``
    from tools/test.py) or of a bare metrics JSON (a dict, or JSON lines
    whose last record is used; ``record`` is then None)."""
    with open(path) as f:
        text = f.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if not lines:
            raise SpecError(f'{path}: empty results file')
        try:
            data = json.loads(lines[-1])
        except json.JSONDecodeError as e:
            raise SpecError(f'{path}: not a metrics JSON: {e}') from e
    if not isinstance(data, dict):
        raise SpecError(f'{path}: expected a JSON object of metrics')
    if isinstance(data.get('metrics'), dict) and 'record' in data:
        return data['metrics'], data['record']
    return data, None


def find_results(work_dir: str) -> List[str]:
    """Result files of ``work_dir``, newest first:
    ``<timestamp>/result.json`` (with provenance) and, for older runs,
    mmengine's ``<timestamp>/<timestamp>.json``."""
    if not osp.isdir(work_dir):
        return []
    out = []
    for stamp in sorted((d for d in os.listdir(work_dir)
                         if TIMESTAMP_RE.match(d)), reverse=True):
        for name in (run_record.RESULT_FILE, f'{stamp}.json'):
            path = osp.join(work_dir, stamp, name)
            if osp.isfile(path):
                out.append(path)
                break
    return out


def find_latest_results(work_dir: str) -> Optional[str]:
    """Newest result file of ``work_dir`` (see :func:`find_results`)."""
    found = find_results(work_dir)
    return found[0] if found else None


def collect_results(path: str) -> tuple:
    """``(metrics, record, file)`` from a results file or a work dir."""
    if osp.isdir(path):
        found = find_latest_results(path)
        if found is None:
            raise SpecError(f'{path}: no <timestamp>/result.json '
                            'metrics file in this work dir')
        path = found
    if not osp.isfile(path):
        raise SpecError(f'{path}: results file not found')
    metrics, record = _load_metrics_json(path)
    return metrics, record, path


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def _run_forked(script: str, argv: List[str]) -> int:
    """``python SCRIPT ARGV...`` in a forked child; its exit code."""
    import multiprocessing
    import runpy

    def target():
        sys.argv = [script] + list(argv)
        sys.path[0] = osp.dirname(osp.abspath(script))
        runpy.run_path(script, run_name='__main__')

    proc = multiprocessing.get_context('fork').Process(target=target)
    proc.start()
    proc.join()
    return proc.exitcode


class Executor:
    """Runs (or collects) :class:`Run` s.

    A stored result is reused only when its provenance record matches
    the run's command now (:data:`imdd_mm.utils.run_record.MATCH_KEYS`:
    config path and hash of the resolved config, checkpoint path and
    sha256, ``cfg_options``, annotation files and their sha256, git
    commit); otherwise the run is repeated, or, with ``--collect-only``,
    reported missing.

    Args:
        python (str): interpreter for ``tools/test.py``.
        test_script (str): path of ``tools/test.py``.
        gpus (int): > 1 launches ``torch.distributed.run``.
        mode (str): ``'auto'`` (reuse matching results, else run),
            ``'rerun'`` (always run), ``'collect'`` (never run) or
            ``'dry-run'`` (only print the commands).
        train_script (str): path of ``tools/train.py`` (entries with
            ``train: true``).
        ignore_commit (bool): reuse results of other git commits (the
            tables then say so; the commit of each is in the provenance).
        fork (bool): run the scripts in forked children of this process
            (same interpreter, script and arguments, so the same command;
            saves the interpreter and import start-up of every run).
    """

    def __init__(self, python: str = sys.executable,
                 test_script: str = osp.join('tools', 'test.py'),
                 gpus: int = 1, mode: str = 'auto',
                 train_script: str = osp.join('tools', 'train.py'),
                 fork: bool = False, ignore_commit: bool = False) -> None:
        self.fork = fork
        self.ignore_commit = ignore_commit
        self.python = python
        self.test_script = test_script
        self.train_script = train_script
        self.gpus = gpus
        self.mode = mode

    def _keys(self, keys: Sequence[str] = run_record.MATCH_KEYS
              ) -> Sequence[str]:
        return tuple(k for k in keys
                     if not (self.ignore_commit and k == 'git_commit'))

    def command(self, run: Run) -> List[str]:
        return build_command(run, self.python, self.test_script, self.gpus)

    def train_command(self, run: Run) -> List[str]:
        return build_train_command(run, self.python, self.train_script)

    def _options(self, run: Run) -> dict:
        return run_record.parse_cfg_options(option_strings(run))

    def _expected(self, run: Run, checkpoint: Optional[str]) -> dict:
        if not osp.isfile(run.config):
            raise SpecError(f'{run.name}: config {run.config} not found')
        return run_record.expected_record(run.config, checkpoint,
                                          self._options(run))

    def _subprocess(self, run: Run, cmd: List[str]) -> None:
        print('+', shlex.join(cmd), flush=True)
        if self.fork and cmd[0] == sys.executable and len(cmd) > 1 and \
                cmd[1].endswith('.py'):
            returncode = _run_forked(cmd[1], cmd[2:])
        else:
            returncode = subprocess.run(cmd).returncode
        if returncode != 0:
            raise RuntimeError(f'{run.name}: {shlex.join(cmd)} failed with '
                               f'exit code {returncode}')

    def _ensure_checkpoint(self, run: Run) -> bool:
        """Train (``tools/train.py``) unless ``<work_dir>/train`` holds a
        checkpoint whose training record matches; sets ``run.checkpoint``.
        False (and ``run.missing``) in collect mode without one."""
        expected = self._expected(run, None)
        path = osp.join(run.train_dir, 'train_record.json')
        stored = _read_json(path) if self.mode != 'rerun' else None
        if stored is not None:
            why = run_record.record_mismatches(
                stored, expected, self._keys(TRAIN_MATCH_KEYS))
            ckpt = stored.get('checkpoint_out')
            if not why and not (ckpt and run_record.file_sha256(ckpt) ==
                                stored.get('checkpoint_out_sha256')):
                why = [f'trained checkpoint {ckpt} missing or changed']
            if not why:
                run.checkpoint = ckpt
                return True
        else:
            why = ['not trained yet']
        if self.mode == 'collect':
            run.missing = f'no matching training run ({"; ".join(why)})'
            return False
        cmd = self.train_command(run)
        os.makedirs(run.train_dir, exist_ok=True)
        self._subprocess(run, cmd)
        last = osp.join(run.train_dir, 'last_checkpoint')
        if not osp.isfile(last):
            raise RuntimeError(f'{run.name}: {shlex.join(cmd)} saved no '
                               f'checkpoint ({last} missing)')
        with open(last) as f:
            ckpt = f.read().strip()
        record = dict(expected, checkpoint_out=ckpt,
                      checkpoint_out_sha256=run_record.file_sha256(ckpt),
                      command=cmd)
        _write(path, json.dumps(record, indent=1, sort_keys=True))
        run.checkpoint = ckpt
        return True

    def _collect_file(self, run: Run) -> None:
        metrics, record, path = collect_results(run.results)
        run.source = path
        if record is not None and run.config:
            why = run_record.record_mismatches(
                record, self._expected(run, run.checkpoint), self._keys())
            if why:
                run.missing = (f'{path} does not match the command: '
                               + '; '.join(why))
                return
            run.verified = True
        run.metrics, run.record = metrics, record

    def __call__(self, run: Run) -> None:
        if run.results:
            self._collect_file(run)
            return
        if self.mode == 'dry-run':
            if run.train:
                print(shlex.join(self.train_command(run)))
            print(shlex.join(self.command(run)))
            return
        if run.train and not self._ensure_checkpoint(run):
            return
        stored = find_results(run.work_dir) if self.mode != 'rerun' else []
        if self.mode == 'collect' and not stored:
            run.missing = f'no results in {run.work_dir}'
            return
        expected = self._expected(run, run.checkpoint)
        if self.mode != 'rerun':
            why = []
            for path in stored:
                metrics, record = _load_metrics_json(path)
                problems = run_record.record_mismatches(
                    record, expected, self._keys())
                if not problems:
                    run.metrics, run.record, run.source = (metrics, record,
                                                           path)
                    run.verified = True
                    return
                why.append(f'{path}: {"; ".join(problems)}')
            if self.mode == 'collect':
                run.missing = f'no result matching the command (stale: ' \
                    f'{why[0]})'
                return
        cmd = self.command(run)
        os.makedirs(run.work_dir, exist_ok=True)
        before = set(find_results(run.work_dir))
        self._subprocess(run, cmd)
        new = [p for p in find_results(run.work_dir) if p not in before]
        if not new:
            raise RuntimeError(f'{run.name}: the test run wrote no result '
                               f'file under {run.work_dir}')
        metrics, record = _load_metrics_json(new[0])
        problems = run_record.record_mismatches(record, expected)
        if problems:
            raise RuntimeError(f'{run.name}: {new[0]} does not record the '
                               f'command it ran: {"; ".join(problems)}')
        run.metrics, run.record, run.source = metrics, record, new[0]
        run.verified = True


# --------------------------------------------------------------- tables
def _value(run: Optional[Run], column: str, key: str) -> Optional[float]:
    if run is None or run.metrics is None:
        return None
    key = (run.entry.get('metric_keys') or {}).get(column, key)
    value = run.metrics.get(key)
    if value is None or isinstance(value, (str, bool)):
        return None
    value = float(value)
    if math.isnan(value):
        return None
    return value * float(run.entry.get('scale', 100))


def _fmt(value: Optional[float], decimals: int) -> str:
    return MISSING if value is None else f'{value:.{decimals}f}'


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _fmt_mean(values: Sequence[Optional[float]], decimals: int) -> str:
    """Mean of the values present; ``*`` marks a partial mean (some rows
    have no value), :data:`MISSING` when none has one."""
    mean = _mean(values)
    if mean is None:
        return MISSING
    partial = any(v is None for v in values)
    return _fmt(mean, decimals) + ('*' if partial else '')


PARTIAL_NOTE = ('\\* partial mean: over the rows that have a value only '
                '(the missing rows are listed below); not comparable with '
                'a complete mean.')
PIXEL_ACCURACY_NOTE = (
    'Pixel accuracy (Acc) = (TP + TN) / all pixels of all test images, '
    'pooled, defect vs. normal (TP: defect pixels predicted as any defect '
    'class); it is dominated by the normal background. mAcc = mean class '
    'accuracy: the mean over the background and every defect class of '
    'correct pixels / ground-truth pixels of that class (classes absent '
    'from the ground truth skipped, as in MMSegmentation).')
PIXEL_ACCURACY_KINDS = ('segmentation', 'ablation')


def _categories(entry: dict, table_spec: dict) -> Optional[List[str]]:
    """Categories of a per-category entry (``categories``: a list, or
    ``config`` = the config's top-level ``categories``); None when the
    entry is evaluated once (single dataset or ``protocol: pooled``)."""
    protocol = entry.get('protocol', table_spec.get('protocol'))
    cats = entry.get('categories', table_spec.get('categories'))
    if protocol == 'pooled' or cats is None:
        return None
    if protocol not in (None, 'per_category'):
        raise SpecError(f'{entry["name"]}: protocol must be per_category or '
                        f'pooled, got {protocol!r}')
    if cats == 'config':
        config = entry.get('config')
        if not config or not osp.isfile(config):
            raise SpecError(f'{entry["name"]}: categories: config needs an '
                            f'existing config, got {config!r}')
        from mmengine.config import Config
        cats = Config.fromfile(config).get('categories')
        if not cats:
            raise SpecError(f'{config}: no top-level `categories` list '
                            f'(needed by {entry["name"]})')
    if isinstance(cats, str) or not cats:
        raise SpecError(f'{entry["name"]}: categories must be a non-empty '
                        'list or "config"')
    return [str(c) for c in cats]


def _display_name(entry: dict, table_spec: dict) -> str:
    protocol = entry.get('protocol', table_spec.get('protocol'))
    return entry['name'] + (' (pooled)' if protocol == 'pooled' else '')


def _samples_label(ts: Optional[dict]) -> str:
    """Training-set size from a record's ``train_samples`` (counted from
    the training file the config uses)."""
    if not ts:
        return MISSING
    if ts.get('training_free'):
        return '0 (training-free)'
    if not ts.get('defective'):
        return f'{ts["images"]} normal'
    per = list((ts.get('per_class') or {}).values())
    lo, hi = (min(per), max(per)) if per else (0, 0)
    label = f'{lo}/class' if lo == hi else f'{lo}–{hi}/class'
    if ts.get('normal'):
        label += f' + {ts["normal"]} normal'
    return label


def _samples_cell(runs: Sequence[Run]) -> str:
    records = [r.record.get('train_samples') if r.record else None
               for r in runs]
    if len(runs) == 1:
        return _samples_label(records[0])
    labels = [_samples_label(ts) for ts in records]
    if MISSING in labels:
        return MISSING
    if all(ts.get('training_free') for ts in records):
        return '0 (training-free)'
    if all(not ts.get('defective') for ts in records):
        n = [ts['images'] for ts in records]
        rng = f'{min(n)}' if min(n) == max(n) else f'{min(n)}–{max(n)}'
        return f'{rng} normal per category'
    uniq = sorted(set(labels))
    return (uniq[0] if len(uniq) == 1 else ' / '.join(uniq)) + \
        ' per category'


def _short(sha: Optional[str]) -> str:
    return sha[:12] if sha else 'none'


def provenance_lines(runs: Sequence[Run]) -> List[str]:
    """One line per run: result file, commit, config / checkpoint / data
    hashes, device and date (from the result records)."""
    lines = []
    for run in runs:
        rec = run.record
        if rec is None:
            state = ('collected from ' + run.source + ' without a '
                     'provenance record') if run.metrics else 'no result'
            lines.append(f'- {run.name}: {state}')
            continue
        data = ', '.join(f'{osp.basename(f["path"])} {_short(f["sha256"])}'
                         for f in rec.get('data_files') or [])
        dirty = ' (uncommitted changes)' if rec.get('git_dirty') else ''
        lines.append(
            f'- {run.name}: `{run.source}`; commit '
            f'{_short(rec.get("git_commit"))}{dirty}; config '
            f'{rec.get("config")} sha256 {_short(rec.get("config_sha256"))}'
            f'; checkpoint {rec.get("checkpoint")} sha256 '
            f'{_short(rec.get("checkpoint_sha256"))}; data {data}; '
            f'{rec.get("device", "?")}; {rec.get("date", "?")}')
    return lines


def _run_frozen_sources(run: 'Run') -> Dict[str, dict]:
    """``{network: source}`` of one run: its result record's
    ``frozen_sources`` (a list with ``name``), else the results file's
    ``frozen_sources`` written by ``FrozenSourcesHook`` (a dict)."""
    listed = (run.record or {}).get('frozen_sources')
    if listed:
        return {str(s.get('name', i)): s
                for i, s in enumerate(listed) if isinstance(s, dict)}
    found = (run.metrics or {}).get('frozen_sources')
    return {k: v for k, v in found.items() if isinstance(v, dict)} \
        if isinstance(found, dict) else {}


def frozen_weights_notes(runs: Sequence['Run']) -> List[str]:
    """Footnotes on the frozen networks behind the numbers: a † line for
    every run with random frozen weights (``model.allow_random_frozen``),
    then which weights the runs used."""
    notes, per_source = [], {}
    for run in runs:
        sources = _run_frozen_sources(run)
        random = [n for n, s in sources.items() if s.get('kind') == 'random']
        if random:
            notes.append(f'† {run.name}: RANDOM frozen weights in '
                         f'{", ".join(random)} (model.allow_random_frozen='
                         'True); not the pretrained networks\' numbers.')
        for name, src in sources.items():
            text = name + ': ' + ', '.join(
                f'{k}={src[k]}' for k in sorted(src) if k != 'name')
            per_source.setdefault(text, set()).add(run.name)
    if per_source:
        notes.append('Frozen weights: ' + '; '.join(
            f'{text} ({len(names)} run{"s" * (len(names) > 1)})'
            for text, names in sorted(per_source.items())) + '.')
    return notes


class Table:
    """A rendered table: header, rows, commands, notes, provenance."""

    def __init__(self, name: str, title: str, header: List[str]) -> None:
        self.name = name
        self.title = title
        self.header = header
        self.rows: List[List[str]] = []
        self.bold_rows: set = set()
        self.commands: List[str] = []
        self.notes: List[str] = []
        self.provenance: List[str] = []

    def add_note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)

    def markdown(self) -> str:
        out = io.StringIO()
        out.write(f'### {self.title}\n\n')
        if self.commands:
            out.write('```bash\n' + '\n'.join(self.commands) + '\n```\n\n')
        out.write('| ' + ' | '.join(self.header) + ' |\n')
        out.write('|' + '---|' * len(self.header) + '\n')
        for i, row in enumerate(self.rows):
            cells = [f'**{c}**' if i in self.bold_rows and c != MISSING else c
                     for c in row]
            out.write('| ' + ' | '.join(cells) + ' |\n')
        for note in self.notes:
            out.write(f'\n{note}\n')
        if self.provenance:
            out.write('\n<details><summary>Provenance</summary>\n\n' +
                      '\n'.join(self.provenance) + '\n\n</details>\n')
        return out.getvalue()

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator='\n')
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return out.getvalue()


def _command_lines(runs: Sequence[Run], executor: Executor) -> List[str]:
    lines = []
    for run in runs:
        cmd = shlex.join(executor.command(run)) if run.config else ''
        if run.train and not run.results:
            lines.append(shlex.join(executor.train_command(run)))
        if run.results:
            lines.append(f'# {run.name}: collected from {run.source}')
            if cmd:
                lines.append(cmd)
        else:
            lines.append(cmd)
    return lines


def _prepare_vocabulary(run: Run, entry: dict) -> None:
    if 'test_vocabulary' not in entry:
        return
    names = read_vocabulary(entry['test_vocabulary'])
    key = entry.get('vocabulary_key', 'test_vocabulary')
    if vocabulary_needs_config(names) and run.config:
        run.config = write_override_config(
            osp.join(run.work_dir, 'vocabulary_override.py'), run.config,
            key, names)
    else:
        run.cfg_options[key] = names


def seed_suffix(seed: int) -> str:
    """``''`` for seed 0 (the unseeded names), else ``'_seed<S>'``."""
    return '' if seed == 0 else f'_seed{seed}'


def seeds_at(entry: dict, table_spec: dict, n) -> list:
    """Seeds of a ``data_efficiency`` entry at N: ``[None]`` (no
    ``seeds`` key: one unseeded run), the ``seeds`` list, or
    ``seeds[N]`` of a dict (``[0]`` for N not listed)."""
    seeds = entry.get('seeds', table_spec.get('seeds'))
    if seeds is None:
        return [None]
    if isinstance(seeds, dict):
        seeds = seeds.get(n, seeds.get(str(n), [0]))
    if not isinstance(seeds, (list, tuple)) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0
            for s in seeds) or len(set(seeds)) != len(seeds):
        raise SpecError(f'{entry["name"]}: seeds must be a non-empty list '
                        'of distinct ints >= 0 (or a dict N -> list), got '
                        f'{seeds!r} at N={n}')
    return list(seeds)


def _pick(results, key):
    """``results[key]`` (int or str key) of a dict, else ``results``."""
    if isinstance(results, dict):
        return results.get(key, results.get(str(key)))
    return results


def seed_cell(values: Sequence[Optional[float]], decimals: int) -> str:
    """One value, or mean ± sample standard deviation over the seeds
    that have a value with their count (``k of m seeds`` when some are
    missing)."""
    if len(values) == 1:
        return _fmt(values[0], decimals)
    present = [v for v in values if v is not None]
    if not present:
        return MISSING
    mean = sum(present) / len(present)
    cell = _fmt(mean, decimals)
    if len(present) > 1:
        var = sum((v - mean)**2 for v in present) / (len(present) - 1)
        cell += f' ± {math.sqrt(var):.{decimals}f}'
    count = (f'{len(present)} seeds' if len(present) == len(values) else
             f'{len(present)} of {len(values)} seeds')
    return f'{cell} ({count})'


SEEDS_NOTE = ('Cells over several seeds: mean ± sample standard deviation '
              '(n − 1) over the seeds with a result, and their number; '
              'every seed\'s value is in the per-seed table.')


def _per_seed_table(stem: str, title: str, table_spec: dict, groups,
                    labels, column: str, key: str, decimals: int) -> Table:
    """Rows = entry x seed, columns = N (empty: the seed is not run at
    that N)."""
    table = Table(f'{stem}_per_seed', f'{title} ({column}) Per seed.',
                  [FIRST_COLUMN['data_efficiency'], 'Seed'] +
                  [f'N={n}' for n in labels])
    for entry, runs in groups:
        cells: Dict[int, Dict] = {}  # seed -> N -> cell
        for n in labels:
            at_n = [r for m, r in runs if m == n]  # in seed order
            for seed, run in zip(seeds_at(entry, table_spec, n), at_n):
                cells.setdefault(seed, {})[n] = _fmt(
                    _value(run, column, key), decimals)
        for seed in sorted(cells):
            table.rows.append([entry['name'], str(seed)] +
                              [cells[seed].get(n, '') for n in labels])
    table.add_note('Empty: the seed is not part of the spec at that N.')
    return table


def threshold_run(run: Run) -> Optional[Run]:
    """The validation run of an entry with ``val_threshold`` (None
    without): the same config and checkpoint, the entry's ``cfg_options``
    plus ``val_threshold.cfg_options`` (the validation split and, e.g.,
    a metric's threshold sweep), in ``<work_dir>/val_threshold``."""
    vt = run.entry.get('val_threshold')
    if vt is None:
        return None
    if not isinstance(vt, dict) or not isinstance(
            vt.get('cfg_options'), dict) or not vt.get('key') or \
            not vt.get('metric'):
        raise SpecError(f'{run.name}: val_threshold needs cfg_options (a '
                        'dict: how to test on the validation split), key '
                        '(the option the chosen value sets) and metric '
                        '(the validation result that holds it)')
    if run.results:
        raise SpecError(f'{run.name}: val_threshold needs a config and '
                        'checkpoint to run, not results')
    val = Run(run.name + ' [val threshold]', {}, osp.join(
        run.work_dir, 'val_threshold'))
    val.entry = run.entry
    val.config, val.checkpoint, val.seed = run.config, run.checkpoint, \
        run.seed
    val.cfg_options = dict(run.cfg_options, **vt['cfg_options'])
    return val


def _apply_val_threshold(run: Run, val: Run, executor) -> bool:
    """Run (or collect) ``val`` and set ``run.cfg_options[key]`` to its
    ``metric``; False (``run.missing`` set) when there is none."""
    vt = run.entry['val_threshold']
    executor(val)
    value = (val.metrics or {}).get(vt['metric'])
    if getattr(executor, 'mode', None) == 'dry-run':
        run.cfg_options[vt['key']] = f'<{vt["metric"]} of the val run>'
        executor(run)
        return False
    if value is None or isinstance(value, (str, bool)) or math.isnan(
            float(value)):
        run.missing = (f'no {vt["metric"]} from {val.name} '
                       f'({val.missing or "not in its result"})')
        return False
    run.cfg_options[vt['key']] = float(value)
    return True


def _expand(entry: dict, table_spec: dict, kind: str,
            base_wd: str) -> List[tuple]:
    """``[(label, Run)]`` of one entry: per timestep, per N, per category
    (``--cfg-options <category_key>=<name>``, work dir ``<entry>/<name>``)
    or a single run."""
    if kind == 'timestep':
        key = entry.get('timestep_key', 'model.backbone.timestep')
        steps = entry.get('timesteps', table_spec.get('timesteps'))
        if not steps:
            raise SpecError(f'entry {entry["name"]} needs timesteps')
        runs = []
        for t in steps:
            results = entry.get('results')
            sub_entry = dict(entry)
            sub_entry['results'] = (results.get(t, results.get(str(t)))
                                    if isinstance(results, dict) else
                                    results)
            runs.append((t, Run(f'{entry["name"]} t={t}', sub_entry,
                                f'{base_wd}_t{t}', {key: t},
                                fmt=dict(t=t))))
        return runs
    if kind == 'data_efficiency':
        samples = table_spec.get('samples', [25, 50, 100, 200, 350])
        runs = []
        for n in samples:
            for seed in seeds_at(entry, table_spec, n):
                results = _pick(entry.get('results') or {}, n)
                if seed is not None:
                    results = _pick(results, seed)
                sub_entry = dict(entry, results=results)
                if results is None and not entry.get('config'):
                    runs.append((n, None))
                    continue
                if seed is None:
                    runs.append((n, Run(f'{entry["name"]} N={n}', sub_entry,
                                        f'{base_wd}_n{n}', fmt=dict(n=n))))
                    continue
                suffix = seed_suffix(seed)
                runs.append((n, Run(
                    f'{entry["name"]} N={n} seed={seed}', sub_entry,
                    f'{base_wd}_n{n}{suffix}',
                    fmt=dict(n=n, seed=seed, seed_suffix=suffix))))
        return runs
    cats = _categories(entry, table_spec)
    if cats is not None:
        key = entry.get('category_key',
                        table_spec.get('category_key', 'category'))
        runs = []
        for cat in cats:
            results = entry.get('results')
            sub_entry = dict(entry)
            sub_entry['results'] = (results.get(cat) if isinstance(
                results, dict) else results)
            run = Run(f'{entry["name"]} [{cat}]', sub_entry,
                      osp.join(base_wd, slugify(cat)), {key: cat},
                      category=cat)
            _prepare_vocabulary(run, entry)
            runs.append((cat, run))
        return runs
    run = Run(_display_name(entry, table_spec), entry, base_wd)
    _prepare_vocabulary(run, entry)
    return [(None, run)]


def _entry_values(runs: List[tuple], metrics: List[list],
                  decimals: int) -> List[str]:
    """Cells of one entry: its value, or the (possibly partial) mean over
    its categories."""
    if len(runs) == 1 and runs[0][0] is None:
        return [_fmt(_value(runs[0][1], c, k), decimals) for c, k in metrics]
    return [_fmt_mean([_value(r, c, k) for _, r in runs], decimals)
            for c, k in metrics]


def _entry_means(runs: List[tuple], metrics: List[list]
                 ) -> List[Optional[float]]:
    """Numeric entry values for averages; None when the entry is partial
    (an average is over complete rows only)."""
    out = []
    for c, k in metrics:
        vals = [_value(r, c, k) for _, r in runs]
        out.append(None if any(v is None for v in vals) else _mean(vals))
    return out


def _per_category_table(stem: str, title: str, groups, metrics,
                        decimals: int) -> Table:
    """Rows = categories, columns = method x metric, plus the mean row."""
    cats: List[str] = []
    for _, runs in groups:
        for cat, _ in runs:
            if cat is not None and cat not in cats:
                cats.append(cat)
    per_cat = [(e, {cat: r for cat, r in runs}) for e, runs in groups
               if runs and runs[0][0] is not None]
    header = ['Category'] + [f'{e["name"]} {c}' for e, _ in per_cat
                             for c, _ in metrics]
    table = Table(f'{stem}_per_category', f'{title} Per category.', header)
    for cat in cats:
        table.rows.append([cat] + [
            _fmt(_value(runs.get(cat), c, k), decimals)
            for _, runs in per_cat for c, k in metrics])
    table.bold_rows.add(len(table.rows))
    table.rows.append([f'Mean ({len(cats)} categories)'] + [
        _fmt_mean([_value(runs.get(cat), c, k) for cat in cats], decimals)
        for _, runs in per_cat for c, k in metrics])
    return table


def build_table(table_spec: dict, executor: Callable[[Run], None],
                work_root: str, decimals: int = 1,
                out_dir: Optional[str] = None) -> List[Table]:
    """Run/collect one table of the spec and render it (plus the Table-13
    companion and the PNG for ``data_efficiency``, and a per-category table
    for per-category anomaly entries)."""
    kind = table_spec['kind']
    stem, title, metrics = KINDS[kind]
    stem = table_spec.get('name', stem)
    title = table_spec.get('title', title)
    metrics = [list(m) for m in table_spec.get('metrics', metrics)]
    decimals = int(table_spec.get('decimals', decimals))
    table_dir = osp.join(work_root, slugify(stem))

    groups: List[tuple] = []  # (entry, [(label, run)])
    for entry in table_spec['entries']:
        base_wd = osp.join(table_dir,
                           slugify(_display_name(entry, table_spec)))
        try:
            groups.append((entry, _expand(entry, table_spec, kind, base_wd)))
        except SpecError as e:
            raise SpecError(f'{stem}: {e}') from e

    all_runs = [r for _, runs in groups for _, r in runs if r is not None]
    test_runs, all_runs = all_runs, []
    for run in test_runs:
        val = threshold_run(run)
        if val is not None:
            all_runs.append(val)
            if not _apply_val_threshold(run, val, executor):
                all_runs.append(run)
                continue
        executor(run)
        if val is not None and run.metrics is not None:
            vt = run.entry['val_threshold']
            run.metrics = dict(run.metrics, **{
                f'val_threshold/{vt["metric"]}': run.cfg_options[vt['key']]})
        all_runs.append(run)
    commands = _command_lines(all_runs, executor) if isinstance(
        executor, Executor) else [
            f'# {r.name}: {r.source or "not run"}' for r in all_runs]

    tables = []
    partial = False
    if kind == 'anomaly':
        names = [_display_name(e, table_spec) for e, _ in groups]
        per_category = any(runs and runs[0][0] is not None
                           for _, runs in groups)
        if per_category:
            names = [n + (' (mean)' if runs and runs[0][0] is not None
                          else '') for n, (_, runs) in zip(names, groups)]
        table = Table(stem, title, [FIRST_COLUMN[kind]] + names)
        cells = [_entry_values(runs, metrics, decimals) for _, runs in groups]
        for i, (column, _) in enumerate(metrics):
            table.rows.append([column] + [c[i] for c in cells])
        table.rows.append(['# Training Samples'] + [
            _samples_cell([r for _, r in runs]) for _, runs in groups])
        table.add_note('# Training Samples: counted from the training '
                       'annotation file each run\'s config uses (after its '
                       'category / normality / few-shot filters).')
        partial = any(c.endswith('*') for row in table.rows for c in row)
        tables.append(table)
        if per_category:
            tables.append(_per_category_table(stem, title, groups, metrics,
                                              decimals))
    elif kind in ('timestep', 'data_efficiency'):
        column, key = metrics[0]
        labels = list(dict.fromkeys(lab for lab, _ in groups[0][1]))
        if kind == 'timestep':
            header = ['Method', 't'] + [c for c, _ in metrics]
            table = Table(stem, title, header)
            for entry, runs in groups:
                for t, run in runs:
                    table.rows.append([entry['name'], str(t)] + [
                        _fmt(_value(run, c, k), decimals)
                        for c, k in metrics])
            tables.append(table)
        else:
            header = [FIRST_COLUMN[kind]] + [f'N={n}' for n in labels]
            table = Table(stem, title + f' ({column})', header)
            curves = {}
            seeded = False
            for entry, runs in groups:
                per_n = [[_value(r, column, key) if r else None
                          for m, r in runs if m == n] for n in labels]
                seeded = seeded or any(len(v) > 1 for v in per_n)
                values = [_mean(v) for v in per_n]
                curves[entry['name']] = (labels, values)
                table.rows.append([entry['name']] +
                                  [seed_cell(v, decimals) for v in per_n])
                for n, r in runs:
                    ts = (r.record or {}).get('train_samples') if r else None
                    if ts and not ts.get('training_free') and \
                            ts.get('min_per_class') != n:
                        table.add_note(
                            f'{r.name}: the training file has '
                            f'{_samples_label(ts)}, not N={n} per class.')
            tables.append(table)
            if seeded:
                table.add_note(SEEDS_NOTE)
                tables.append(_per_seed_table(stem, title, table_spec,
                                              groups, labels, column, key,
                                              decimals))
            tables.append(
                _samples_to_target(table_spec, groups, curves, stem,
                                   decimals))
            if out_dir is not None:
                png = osp.join(out_dir, f'{stem}.png')
                plot_curves(curves, png, column,
                            target=float(table_spec.get('target', 0.95)) *
                            100, title=title)
                table.notes.append(f'![{title}]({stem}.png)')
    else:
        header = [FIRST_COLUMN[kind]]
        if kind == 'classification':
            header.append('# Defect Types')
        header += [c for c, _ in metrics]
        if kind == 'detection':
            header.append('# Train Samples')
        table = Table(stem, title, header)
        entry_values: List[List[Optional[float]]] = []
        for entry, runs in groups:
            name = _display_name(entry, table_spec)
            if kind == 'cross_dataset' and 'train' in entry and \
                    isinstance(entry['train'], str):
                name = f'{entry["train"]} → {entry.get("test", "?")}'
            extra = ([str(entry.get('defect_types', MISSING))]
                     if kind == 'classification' else [])
            tail = ([_samples_cell([r for _, r in runs])]
                    if kind == 'detection' else [])
            if runs[0][0] is not None:  # per category
                for cat, run in runs:
                    table.rows.append(
                        [f'{name} / {cat}'] + extra +
                        [_fmt(_value(run, c, k), decimals)
                         for c, k in metrics] +
                        ([_samples_cell([run])] if tail else []))
                table.bold_rows.add(len(table.rows))
                name = f'{name}: mean of {len(runs)} categories'
            table.rows.append([name] + extra +
                              _entry_values(runs, metrics, decimals) + tail)
            entry_values.append(_entry_means(runs, metrics))
        if kind in AVERAGE_KINDS and len(groups) > 1:
            avg = ['Average'] + (['–'] if kind == 'classification' else [])
            avg += [_fmt_mean([vals[i] for vals in entry_values], decimals)
                    for i in range(len(metrics))]
            table.bold_rows.add(len(table.rows))
            table.rows.append(avg)
        partial = any(c.endswith('*') for row in table.rows for c in row)
        if kind in PIXEL_ACCURACY_KINDS:
            table.add_note(PIXEL_ACCURACY_NOTE)
        tables.append(table)
    missing = [f'- {r.name}: {r.missing}' for r in all_runs if r.missing]
    unverified = [r.name for r in all_runs
                  if r.metrics is not None and not r.verified]
    for t in tables:
        t.commands = commands
        if partial:
            t.add_note(PARTIAL_NOTE)
        if missing:
            t.add_note('Missing (no result matching the command; shown as '
                       f'{MISSING}):\n' + '\n'.join(missing))
        if unverified:
            t.add_note('‡ Collected from results files whose provenance was '
                       'not checked against the command: ' +
                       ', '.join(unverified) + '.')
        if getattr(executor, 'ignore_commit', False):
            commits = sorted({str((r.record or {}).get('git_commit'))[:12]
                              for r in all_runs if r.record})
            t.add_note('Results of other commits accepted (--ignore-commit)'
                       f'; commits: {", ".join(commits)}.')
        for note in frozen_weights_notes(all_runs):
            t.add_note(note)
        t.provenance = provenance_lines(all_runs)
    return tables


def samples_to_reach(samples: Sequence[float],
                     values: Sequence[Optional[float]],
                     target: float) -> Optional[float]:
    """First N where the (linearly interpolated) curve reaches ``target``;
    ``None`` if it never does."""
    pts = [(float(n), v) for n, v in zip(samples, values) if v is not None]
    pts.sort()
    for i, (n, v) in enumerate(pts):
        if v >= target:
            if i == 0:
                return n
            n0, v0 = pts[i - 1]
            return n0 + (n - n0) * (target - v0) / (v - v0)
    return None


def _samples_to_target(table_spec: dict, groups, curves, stem: str,
                       decimals: int) -> Table:
    target = float(table_spec.get('target', 0.95)) * 100
    names = [e['name'] for e, _ in groups]
    reference = table_spec.get('reference', names[0])
    if reference not in curves:
        raise SpecError(f'{stem}: reference {reference!r} is not an entry')
    needed = {name: samples_to_reach(*curves[name], target)
              for name in names}
    table = Table(f'{stem}_samples_to_target',
                  f'Table 13. Samples per class to reach {target:g}% '
                  f'accuracy (efficiency relative to {reference}).',
                  ['Pre-training', f'Samples for {target:g}% Acc',
                   'Efficiency'])
    ref = needed[reference]
    for name in names:
        n = needed[name]
        if n is None:
            cell = f'>{max(curves[name][0])}'
            eff = MISSING
        else:
            cell = f'{n:.0f}'
            eff = MISSING if ref is None else f'{ref / n:.1f}×'
        table.rows.append([name, cell, eff])
    table.notes.append('Samples are linearly interpolated between the '
                       'measured N; ">N" = the target was not reached.')
    return table


def plot_curves(curves: dict, path: str, ylabel: str,
                target: Optional[float] = None, title: str = '') -> str:
    """Figure-11 style curve: metric vs. training samples per class."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    for name, (xs, ys) in curves.items():
        pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
        if pts:
            ax.plot(*zip(*pts), marker='o', label=name)
    if target is not None:
        ax.axhline(target, color='gray', linestyle='--', linewidth=1,
                   label=f'{target:g}% target')
    ax.set_xlabel('Training samples per class')
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = path + '.tmp.png'
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _write(path: str, text: str) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, path)


def build_all(spec: dict, out_dir: str, executor: Callable[[Run], None],
              only: Optional[Sequence[str]] = None,
              header: str = '') -> List[str]:
    """Build every table of ``spec`` into ``out_dir``; returns the files."""
    os.makedirs(out_dir, exist_ok=True)
    work_root = spec.get('work_dir', osp.join('work_dirs', 'benchmark'))
    decimals = int(spec.get('decimals', 1))
    written, sections = [], []
    for table_spec in spec['tables']:
        stem = table_spec.get('name', KINDS[table_spec['kind']][0])
        if only and stem not in only and table_spec['kind'] not in only:
            continue
        for table in build_table(table_spec, executor, work_root, decimals,
                                 out_dir):
            md = table.markdown()
            for ext, text in (('md', md), ('csv', table.csv())):
                path = osp.join(out_dir, f'{table.name}.{ext}')
                _write(path, text)
                written.append(path)
            sections.append(md)
        if table_spec['kind'] == 'data_efficiency':
            written.append(osp.join(out_dir, f'{stem}.png'))
    summary = osp.join(out_dir, 'tables.md')
    _write(summary, header + '\n\n'.join(sections))
    written.append(summary)
    return written


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Run/collect test results and write the paper tables '
        '(Markdown + CSV)')
    parser.add_argument('spec', help='YAML / JSON / .py benchmark spec')
    parser.add_argument('--out-dir', default='work_dirs/benchmark_tables')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--collect-only', action='store_true',
                       help='never run tools/test.py; collect existing '
                       'results from the work dirs')
    group.add_argument('--rerun', action='store_true',
                       help='run even when results already exist')
    group.add_argument('--dry-run', action='store_true',
                       help='only print the commands')
    parser.add_argument('--only', nargs='+', help='table names or kinds')
    parser.add_argument('--gpus', type=int, default=1,
                        help='>1: launch tools/test.py with '
                        'torch.distributed.run')
    parser.add_argument('--python', default=sys.executable)
    parser.add_argument('--ignore-commit', action='store_true',
                        help='reuse results written at other git commits '
                        '(noted under every table)')
    parser.add_argument('--fork', action='store_true',
                        help='run tools/train.py / tools/test.py in forked '
                        'children of this process (same commands, no '
                        'start-up per run; single-process runs only)')
    parser.add_argument('--test-script',
                        default=osp.join('tools', 'test.py'))
    parser.add_argument('--train-script',
                        default=osp.join('tools', 'train.py'),
                        help='used by entries with train: true')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    spec = load_spec(args.spec)
    mode = ('collect' if args.collect_only else 'rerun' if args.rerun else
            'dry-run' if args.dry_run else 'auto')
    executor = Executor(python=args.python, test_script=args.test_script,
                        gpus=args.gpus, mode=mode,
                        train_script=args.train_script, fork=args.fork,
                        ignore_commit=args.ignore_commit)
    invocation = shlex.join(['python', 'tools/analysis_tools/'
                             'benchmark_table.py'] +
                            (list(argv) if argv is not None else sys.argv[1:]))
    header = f'<!-- generated by: {invocation} -->\n\n'
    if mode == 'dry-run':
        for table_spec in spec['tables']:
            build_table(table_spec, executor,
                        spec.get('work_dir', 'work_dirs/benchmark'))
        return 0
    for path in build_all(spec, args.out_dir, executor, args.only, header):
        print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
