# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Loss / metric curves and training time from mmengine's JSON scalar logs
(``WORK_DIR/TIMESTAMP/vis_data/scalars.json``), with mmdet's sub-commands.

Usage::

    python tools/analysis_tools/analyze_logs.py plot_curve \\
        work_dirs/stage2_tiny/*/vis_data/scalars.json \\
        --keys loss loss_mask --legend run1 --out curves.png
    python tools/analysis_tools/analyze_logs.py plot_curve scalars.json \\
        --keys imdd/seg/iou --out iou.png          # validation metric
    python tools/analysis_tools/analyze_logs.py cal_train_time scalars.json

Training records carry ``lr``/``time`` and are plotted against ``iter``
(or ``step``); validation records (no ``lr``) against ``step``, which
mmengine sets to the epoch or iteration of that evaluation.
``cal_train_time`` reports the mean and standard deviation of the seconds
per iteration (the first logged interval, which includes start-up, is left
out unless ``--include-outliers``) and the slowest and fastest interval.
"""
import argparse
import json
import statistics
from pathlib import Path
from typing import Dict, List


def load_json_log(path: str) -> Dict[str, List[dict]]:
    """``{'train': [...], 'val': [...]}`` records of one scalars.json."""
    train, val = [], []
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f'{path}:{lineno}: not a JSON line ({e})')
            (train if 'lr' in rec or 'time' in rec else val).append(rec)
    if not train and not val:
        raise SystemExit(f'{path}: no records (is it vis_data/scalars.json?)')
    return dict(train=train, val=val)


def _x(rec: dict) -> float:
    for key in ('iter', 'step', 'epoch'):
        if key in rec:
            return rec[key]
    raise KeyError('no iter/step/epoch field')


def curves(logs: Dict[str, Dict[str, List[dict]]],
           keys: List[str]) -> Dict[str, Dict[str, tuple]]:
    """``{log: {key: (xs, ys)}}``; a key missing from a log is an error."""
    out = {}
    for path, log in logs.items():
        out[path] = {}
        for key in keys:
            recs = [r for r in log['train'] if key in r] or \
                [r for r in log['val'] if key in r]
            if not recs:
                have = sorted({k for r in log['train'] + log['val']
                               for k in r})
                raise SystemExit(f'{path}: no key {key!r}; the log has '
                                 f'{", ".join(have)}')
            out[path][key] = ([_x(r) for r in recs], [r[key] for r in recs])
    return out


def plot_curve(args) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    logs = {p: load_json_log(p) for p in args.json_logs}
    data = curves(logs, args.keys)
    legend = args.legend or [
        f'{Path(p).parent.parent.name}:{k}' if len(logs) > 1 else k
        for p in logs for k in args.keys
    ]
    if len(legend) != len(logs) * len(args.keys):
        raise SystemExit(f'--legend needs {len(logs) * len(args.keys)} '
                         f'names (logs x keys), got {len(legend)}')
    plt.style.use(args.style)
    fig, ax = plt.subplots(figsize=(7, 4))
    names = iter(legend)
    for path, per_key in data.items():
        for key, (xs, ys) in per_key.items():
            ax.plot(xs, ys, label=next(names), linewidth=1.2)
    ax.set_xlabel('iter / step')
    ax.set_title(args.title or ', '.join(args.keys))
    ax.legend()
    fig.tight_layout()
    if args.out:
        fig.savefig(args.out, dpi=120)
        print(f'wrote {args.out}')
    else:
        plt.show()
    plt.close(fig)


def train_time(log: Dict[str, List[dict]],
               include_outliers: bool = False) -> dict:
    """Seconds per iteration of one log's training records."""
    times = [r['time'] for r in log['train'] if 'time' in r]
    if not include_outliers:
        times = times[1:]
    if not times:
        raise SystemExit('no training intervals with a `time` field')
    return dict(
        mean=statistics.fmean(times),
        std=statistics.pstdev(times),
        slowest=max(times),
        fastest=min(times),
        intervals=len(times))


def cal_train_time(args) -> None:
    for path in args.json_logs:
        t = train_time(load_json_log(path), args.include_outliers)
        print(f'-----Analyze train time of {path}-----')
        print(f'slowest interval: {t["slowest"]:.4f} s/iter, fastest: '
              f'{t["fastest"]:.4f} s/iter')
        print(f'average iter time: {t["mean"]:.4f} s/iter '
              f'(std {t["std"]:.4f}, {t["intervals"]} intervals)')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Analyze json logs')
    sub = p.add_subparsers(dest='task', required=True)
    pc = sub.add_parser('plot_curve', help='plot curves from json logs')
    pc.add_argument('json_logs', nargs='+')
    pc.add_argument('--keys', nargs='+', default=['loss'])
    pc.add_argument('--legend', nargs='+', default=None)
    pc.add_argument('--title', default=None)
    pc.add_argument('--style', default='default')
    pc.add_argument('--out', default=None, help='image file to write')
    ct = sub.add_parser('cal_train_time', help='time per iteration')
    ct.add_argument('json_logs', nargs='+')
    ct.add_argument('--include-outliers', action='store_true',
                    help='keep the first interval (start-up)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for path in args.json_logs:
        if not Path(path).is_file():
            raise SystemExit(f'{path}: no such log file')
    dict(plot_curve=plot_curve, cal_train_time=cal_train_time)[args.task](
        args)


if __name__ == '__main__':
    main()
