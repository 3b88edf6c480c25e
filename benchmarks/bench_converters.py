# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Converter throughput vs a plain decode-only loop.

Both sides use the same images (those the converter lists) and the same
number of processes, measured side by side in one run (alternating,
``--repeat`` times, best time of each kept):

* decode-only: ``cv2.imread(path)`` of every image in a process pool;
* converter: the full ``run_conversion`` (scan, decode + validate images,
  read masks/XML/labels, RLE, captions, nouns, split, atomic writes).

ratio = converter images/s / decode images/s (target >= 0.6), from the
best wall time of each side. ``cpu_ratio`` is the same ratio from the CPU
time (user + system) the side used in this process and its workers: on a
shared, loaded machine the wall times mostly measure the other jobs, the
CPU times do not.

Usage::

    python benchmarks/bench_converters.py magnetic_tile \
        --root ../shared/data/magnetic_tile --nproc 2 [--repeat 3]
"""
import argparse
import json
import multiprocessing as mp
import os
import os.path as osp
import sys
import tempfile
import time

_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import cv2  # noqa: E402

from data_converters.base import (_chunksize, get_converter,  # noqa: E402
                                  run_conversion)


def _decode(path: str) -> int:
    img = cv2.imread(path)
    return 0 if img is None else int(img.shape[0])


def _init() -> None:
    cv2.setNumThreads(1)


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def decode_only(paths, nproc: int) -> float:
    t0 = time.perf_counter()
    if nproc <= 1:
        _init()
        for p in paths:
            _decode(p)
    else:
        ctx = mp.get_context('fork')
        chunk = _chunksize(len(paths), nproc)  # same as the converter
        with ctx.Pool(nproc, initializer=_init) as pool:
            for _ in pool.imap(_decode, paths, chunksize=chunk):
                pass
    return time.perf_counter() - t0


def convert_once(source: str, root: str, nproc: int) -> float:
    conv = get_converter(source)(root)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        run_conversion(conv, out, nproc=nproc, progress=False)
        return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('source')
    p.add_argument('--root', required=True)
    p.add_argument('--nproc', type=int, default=2)
    p.add_argument('--repeat', type=int, default=3)
    args = p.parse_args()
    # the vocabulary/taxonomy tables load once per process (like the CLI)
    from imdd_mm.vocab import extract_nouns, load_taxonomy
    load_taxonomy()
    extract_nouns('warm up')
    conv = get_converter(args.source)(args.root)
    paths = [osp.join(args.root, conv.item_path(it)) for it in conv.scan()]
    t_dec, t_conv, c_dec, c_conv = [], [], [], []
    for _ in range(args.repeat):
        c0 = _cpu()
        t_dec.append(decode_only(paths, args.nproc))
        c1 = _cpu()
        t_conv.append(convert_once(args.source, args.root, args.nproc))
        c_dec.append(c1 - c0)
        c_conv.append(_cpu() - c1)
    n = len(paths)
    dec_ips, conv_ips = n / min(t_dec), n / min(t_conv)
    print(json.dumps({
        'source': args.source, 'images': n, 'nproc': args.nproc,
        'decode_only_s': round(min(t_dec), 3),
        'converter_s': round(min(t_conv), 3),
        'decode_only_img_per_s': round(dec_ips, 1),
        'converter_img_per_s': round(conv_ips, 1),
        'ratio': round(conv_ips / dec_ips, 3), 'target': 0.6,
        'decode_only_cpu_s': round(min(c_dec), 3),
        'converter_cpu_s': round(min(c_conv), 3),
        'cpu_ratio': round(min(c_dec) / min(c_conv), 3),
        'all_decode_s': [round(t, 3) for t in t_dec],
        'all_converter_s': [round(t, 3) for t in t_conv],
    }, indent=1))


if __name__ == '__main__':
    main()
