# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Convert one source dataset to COCO instances + structured captions.

Usage::

    python data_converters/convert.py SOURCE --root DIR --out-dir DIR \
        [--nproc N] [--on-error {raise,skip}] [--seed S] \
        [--ratios 0.7 0.1 0.2] [--config FILE]

Writes ``OUT/annotations/<split>.json``, ``OUT/captions.jsonl``,
``OUT/categories.json`` and ``OUT/skipped.json`` (see docs/DESIGN.md).
Images are referenced relative to ``--root``, never copied. ``--config``
(YAML, JSON or Python) drives the generic converters (``folder``, ``voc``,
``yolo``, ``yolo_seg``, ``labelme``); ``python data_converters/convert.py
--list`` prints the registered SOURCE names.
"""
import argparse
import json
import os.path as osp
import sys
from typing import Any, Dict, List, Optional

_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from data_converters.base import (DEFAULT_RATIOS, ConversionError,  # noqa
                                  get_converter, list_converters,
                                  run_conversion)


def load_config(path: Optional[str]) -> Dict[str, Any]:
    """Read a converter config (``.yaml``/``.yml``, ``.json`` or ``.py``)."""
    if not path:
        return {}
    if not osp.isfile(path):
        raise ConversionError(path, 'config file not found')
    try:
        if path.endswith(('.yaml', '.yml')):
            import yaml
            with open(path, encoding='utf-8') as f:
                cfg = yaml.safe_load(f)
        elif path.endswith('.json'):
            with open(path, encoding='utf-8') as f:
                cfg = json.load(f)
        elif path.endswith('.py'):
            from mmengine.config import Config
            cfg = Config.fromfile(path).to_dict()
        else:
            raise ConversionError(path, 'config must be .yaml, .yml, .json '
                                  'or .py')
    except ConversionError:
        raise
    except Exception as e:
        raise ConversionError(path, f'cannot parse config ({e})') from e
    if not isinstance(cfg, dict):
        raise ConversionError(path, 'config must be a mapping')
    return cfg


def convert(source: str,
            root: str,
            out_dir: str,
            nproc: int = 1,
            on_error: str = 'raise',
            seed: int = 0,
            ratios: List[float] = list(DEFAULT_RATIOS),
            config: Optional[Dict[str, Any]] = None,
            progress: bool = True) -> Dict[str, Any]:
    """Python entry point of the CLI; returns the run summary."""
    cls = get_converter(source)
    converter = cls(root, config=config or {})
    return run_conversion(converter, out_dir, nproc=nproc,
                          on_error=on_error, seed=seed, ratios=ratios,
                          progress=progress)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description='Convert a defect dataset to COCO + IMDD captions')
    p.add_argument('source', nargs='?', help='SOURCE name (see --list)')
    p.add_argument('--root', help='dataset root, as published')
    p.add_argument('--out-dir', help='output folder')
    p.add_argument('--nproc', type=int, default=1,
                   help='worker processes (output is identical for any N)')
    p.add_argument('--on-error', choices=('raise', 'skip'), default='raise',
                   help='raise on the first bad file, or skip it and list '
                   'it in OUT/skipped.json')
    p.add_argument('--seed', type=int, default=0,
                   help='seed of the stratified split (sources without '
                   'native splits)')
    p.add_argument('--ratios', type=float, nargs=3, default=DEFAULT_RATIOS,
                   metavar=('TRAIN', 'VAL', 'TEST'))
    p.add_argument('--config', help='converter config (generic converters)')
    p.add_argument('--no-progress', action='store_true')
    p.add_argument('--list', action='store_true',
                   help='list the registered converters and exit')
    args = p.parse_args(argv)
    if not args.list and (not args.source or not args.root
                          or not args.out_dir):
        p.error('SOURCE, --root and --out-dir are required')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.list:
        print('\n'.join(list_converters()))
        return 0
    try:
        summary = convert(args.source, args.root, args.out_dir,
                          nproc=args.nproc, on_error=args.on_error,
                          seed=args.seed, ratios=list(args.ratios),
                          config=load_config(args.config),
                          progress=not args.no_progress)
    except ConversionError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in summary.items() if k != 'files'},
                     sort_keys=True))
    if summary['num_skipped']:
        print(f'skipped {summary["num_skipped"]} item(s); see '
              f'{osp.join(args.out_dir, "skipped.json")}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
