# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Run or collect test results and write the IMDD-1M paper's tables.

For every entry of a spec (YAML, JSON or mmengine ``.py``) this tool runs
``tools/test.py CONFIG CHECKPOINT --work-dir WD [--cfg-options ...]`` (or
reuses the metrics JSON mmengine already wrote to
``WD/<timestamp>/<timestamp>.json``, or a ``results:`` file given in the
spec) and writes each table as Markdown and CSV side by side in
``--out-dir``, the exact commands above each Markdown table.

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
                   checkpoint / work_dir is replaced by N): a table, a PNG
                   curve, and the samples needed to reach ``target``
                   accuracy (linear interpolation) with the efficiency
                   relative to the ``reference`` strategy
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

Entry keys: ``name``, ``config``, ``checkpoint``, optional ``cfg_options``
(dict), ``work_dir``, ``results`` (a metrics JSON or a work dir to collect
from instead of running), ``metric_keys`` (column -> result key),
``scale`` (default 100; 1 when the results are already in %). Table keys:
``kind``, ``name`` (file stem), ``title``, ``metrics`` (list of
``[column, key]``), ``entries``.

Usage:
    python tools/analysis_tools/benchmark_table.py SPEC --out-dir DIR \
        [--collect-only] [--rerun] [--dry-run] [--only NAME ...] [--gpus N]
"""
import argparse
import csv
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
                     [['Accuracy (%)', 'seg/acc'], ['F1 (%)', 'seg/f1'],
                      ['IoU (%)', 'seg/iou'], ['Dice (%)', 'seg/dice']]),
    'anomaly': ('table6_anomaly',
                'Table 6. Comparison with anomaly detection methods.',
                [['P-AUC-ROC', 'anomaly/P-AUROC'],
                 ['AUC-PRO', 'anomaly/AUPRO']]),
    'ablation': ('table7_ablation', 'Table 7. Architectural ablation study.',
                 [['Acc (%)', 'seg/acc'], ['F1 (%)', 'seg/f1'],
                  ['IoU (%)', 'seg/iou']]),
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
            if 'results' not in entry and not (entry.get('config')
                                               and entry.get('checkpoint')):
                raise SpecError(
                    f'{path}: tables[{i}].entries[{j}] ({entry["name"]}) '
                    'needs config and checkpoint, or results')
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
    """One ``tools/test.py`` invocation (or its collected results)."""

    def __init__(self, name: str, entry: dict, work_dir: str,
                 cfg_options: Optional[dict] = None,
                 fmt: Optional[dict] = None) -> None:
        fmt = fmt or {}

        def sub(value):
            return value.format(**fmt) if isinstance(value, str) else value

        self.name = name
        self.entry = entry
        self.config = sub(entry.get('config'))
        self.checkpoint = sub(entry.get('checkpoint'))
        self.work_dir = sub(entry.get('work_dir')) or work_dir
        self.results = sub(entry.get('results'))
        self.cfg_options = dict(entry.get('cfg_options') or {})
        self.cfg_options.update(cfg_options or {})
        self.metrics: Optional[dict] = None
        self.source = ''


def _format_option(value) -> str:
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(_format_option(v) for v in value) + ']'
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return str(value)  # DictAction parses None / True / False
    return json.dumps(value)


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
    cmd += [run.config, run.checkpoint, '--work-dir', run.work_dir]
    if run.cfg_options:
        cmd.append('--cfg-options')
        cmd += [f'{k}={_format_option(v)}'
                for k, v in sorted(run.cfg_options.items())]
    if gpus > 1:
        cmd += ['--launcher', 'pytorch']
    return cmd


def _load_metrics_json(path: str) -> dict:
    """Metrics dict of an mmengine test JSON (a dict, or JSON lines whose
    last record is used)."""
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
    return data


def find_latest_results(work_dir: str) -> Optional[str]:
    """``<work_dir>/<timestamp>/<timestamp>.json`` of the newest run."""
    if not osp.isdir(work_dir):
        return None
    stamps = sorted(d for d in os.listdir(work_dir) if TIMESTAMP_RE.match(d))
    for stamp in reversed(stamps):
        path = osp.join(work_dir, stamp, f'{stamp}.json')
        if osp.isfile(path):
            return path
    return None


def collect_results(path: str) -> tuple:
    """Metrics from a results JSON file or a work dir; ``(metrics, file)``."""
    if osp.isdir(path):
        found = find_latest_results(path)
        if found is None:
            raise SpecError(f'{path}: no <timestamp>/<timestamp>.json '
                            'metrics file in this work dir')
        path = found
    if not osp.isfile(path):
        raise SpecError(f'{path}: results file not found')
    return _load_metrics_json(path), path


class Executor:
    """Runs (or collects) :class:`Run` s.

    Args:
        python (str): interpreter for ``tools/test.py``.
        test_script (str): path of ``tools/test.py``.
        gpus (int): > 1 launches ``torch.distributed.run``.
        mode (str): ``'auto'`` (reuse results found in the work dir, else
            run), ``'rerun'`` (always run), ``'collect'`` (never run) or
            ``'dry-run'`` (only print the commands).
    """

    def __init__(self, python: str = sys.executable,
                 test_script: str = osp.join('tools', 'test.py'),
                 gpus: int = 1, mode: str = 'auto') -> None:
        self.python = python
        self.test_script = test_script
        self.gpus = gpus
        self.mode = mode

    def command(self, run: Run) -> List[str]:
        return build_command(run, self.python, self.test_script, self.gpus)

    def __call__(self, run: Run) -> None:
        if run.results:
            run.metrics, run.source = collect_results(run.results)
            return
        existing = find_latest_results(run.work_dir)
        if self.mode == 'dry-run':
            print(shlex.join(self.command(run)))
            return
        if existing and self.mode in ('auto', 'collect'):
            run.metrics, run.source = collect_results(existing)
            return
        if self.mode == 'collect':
            raise SpecError(f'{run.name}: no results in {run.work_dir} '
                            '(run without --collect-only to produce them)')
        cmd = self.command(run)
        print('+', shlex.join(cmd), flush=True)
        os.makedirs(run.work_dir, exist_ok=True)
        proc = subprocess.run(cmd)
        if proc.returncode != 0:
            raise RuntimeError(f'{run.name}: {shlex.join(cmd)} failed with '
                               f'exit code {proc.returncode}')
        found = find_latest_results(run.work_dir)
        if found is None:
            raise RuntimeError(f'{run.name}: the test run wrote no metrics '
                               f'JSON under {run.work_dir}')
        run.metrics, run.source = collect_results(found)


# --------------------------------------------------------------- tables
def _value(run: Run, column: str, key: str) -> Optional[float]:
    if run.metrics is None:
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


class Table:
    """A rendered table: header, rows, commands, notes."""

    def __init__(self, name: str, title: str, header: List[str]) -> None:
        self.name = name
        self.title = title
        self.header = header
        self.rows: List[List[str]] = []
        self.bold_rows: set = set()
        self.commands: List[str] = []
        self.notes: List[str] = []

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


def build_table(table_spec: dict, executor: Callable[[Run], None],
                work_root: str, decimals: int = 1,
                out_dir: Optional[str] = None) -> List[Table]:
    """Run/collect one table of the spec and render it (plus the Table-13
    companion and the PNG for ``data_efficiency``)."""
    kind = table_spec['kind']
    stem, title, metrics = KINDS[kind]
    stem = table_spec.get('name', stem)
    title = table_spec.get('title', title)
    metrics = [list(m) for m in table_spec.get('metrics', metrics)]
    decimals = int(table_spec.get('decimals', decimals))
    table_dir = osp.join(work_root, slugify(stem))

    # expand entries into runs
    groups: List[tuple] = []  # (entry, [(label, run)])
    for entry in table_spec['entries']:
        base_wd = osp.join(table_dir, slugify(entry['name']))
        if kind == 'timestep':
            key = entry.get('timestep_key', 'model.backbone.timestep')
            steps = entry.get('timesteps', table_spec.get('timesteps'))
            if not steps:
                raise SpecError(f'{stem}: entry {entry["name"]} needs '
                                'timesteps')
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
        elif kind == 'data_efficiency':
            samples = table_spec.get('samples', [25, 50, 100, 200, 350])
            runs = []
            for n in samples:
                results = entry.get('results') or {}
                sub_entry = dict(entry)
                sub_entry['results'] = (results.get(n, results.get(str(n)))
                                        if isinstance(results, dict) else
                                        results)
                if sub_entry['results'] is None and not entry.get('config'):
                    runs.append((n, None))
                    continue
                runs.append((n, Run(f'{entry["name"]} N={n}', sub_entry,
                                    f'{base_wd}_n{n}', fmt=dict(n=n))))
        else:
            run = Run(entry['name'], entry, base_wd)
            _prepare_vocabulary(run, entry)
            runs = [(None, run)]
        groups.append((entry, runs))

    all_runs = [r for _, runs in groups for _, r in runs if r is not None]
    for run in all_runs:
        executor(run)
    commands = _command_lines(all_runs, executor) if isinstance(
        executor, Executor) else [
            f'# {r.name}: {r.source or "not run"}' for r in all_runs]

    tables = []
    if kind == 'anomaly':
        runs = [runs[0][1] for _, runs in groups]
        table = Table(stem, title, [FIRST_COLUMN[kind]] +
                      [r.name for r in runs])
        for column, key in metrics:
            table.rows.append([column] + [
                _fmt(_value(r, column, key), decimals) for r in runs])
        table.rows.append(['# Training Samples'] + [
            str(e.get('train_samples', MISSING)) for e, _ in groups])
        tables.append(table)
    elif kind in ('timestep', 'data_efficiency'):
        column, key = metrics[0]
        labels = [lab for lab, _ in groups[0][1]]
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
            for entry, runs in groups:
                values = [_value(r, column, key) if r else None
                          for _, r in runs]
                curves[entry['name']] = ([n for n, _ in runs], values)
                table.rows.append([entry['name']] +
                                  [_fmt(v, decimals) for v in values])
            tables.append(table)
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
        table = Table(stem, title, header)
        per_column: List[List[Optional[float]]] = [[] for _ in metrics]
        for entry, runs in groups:
            run = runs[0][1]
            name = entry['name']
            if kind == 'cross_dataset' and 'train' in entry:
                name = f'{entry["train"]} → {entry.get("test", "?")}'
            row = [name]
            if kind == 'classification':
                row.append(str(entry.get('defect_types', MISSING)))
            for i, (c, k) in enumerate(metrics):
                v = _value(run, c, k)
                per_column[i].append(v)
                row.append(_fmt(v, decimals))
            table.rows.append(row)
        if kind in AVERAGE_KINDS and len(groups) > 1:
            avg = ['Average'] + (['–'] if kind == 'classification' else [])
            avg += [_fmt(_mean(vals), decimals) for vals in per_column]
            table.bold_rows.add(len(table.rows))
            table.rows.append(avg)
        tables.append(table)
    for t in tables:
        t.commands = commands
        t.notes += frozen_source_footnotes(all_runs)
    return tables


def frozen_source_footnotes(runs: Sequence['Run']) -> List[str]:
    """Footnotes for runs whose results record random frozen networks
    (``frozen_sources`` in the results JSON, written by
    ``FrozenSourcesHook``): such numbers are not the pretrained model's."""
    notes = []
    for run in runs:
        sources = (run.metrics or {}).get('frozen_sources')
        if not isinstance(sources, dict):
            continue
        names = [n for n, s in sources.items()
                 if isinstance(s, dict) and s.get('kind') == 'random']
        if names:
            notes.append(f'† {run.name}: RANDOM frozen weights in '
                         f'{", ".join(names)} (model.allow_random_frozen='
                         'True); not the pretrained networks\' numbers.')
    return notes


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
    parser.add_argument('--test-script',
                        default=osp.join('tools', 'test.py'))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    spec = load_spec(args.spec)
    mode = ('collect' if args.collect_only else 'rerun' if args.rerun else
            'dry-run' if args.dry_run else 'auto')
    executor = Executor(python=args.python, test_script=args.test_script,
                        gpus=args.gpus, mode=mode)
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
