# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Streaming vs exact pixel AUROC + AUPRO: speed ratio and peak memory.

Both are measured side by side in one run on the same synthetic score maps
(256 x 256, several defect regions per defective image). "exact" is what a
user would do without the streaming state: keep every map, then call the
sort-based references ``pixel_auroc`` and ``aupro`` (one global sort each).
"streaming" folds each map into :class:`StreamingPixelCurves` as it arrives
and computes both metrics from the histograms.

Timing excludes map generation. Peak memory is measured with tracemalloc in
a separate pass (numpy allocations included); for "exact" it includes the
stored maps, which that method needs.

Usage:
    python benchmarks/bench_auroc.py [--sizes 50 200 800] [--hw 256]
"""
import argparse
import time
import tracemalloc

import imdd_mm  # noqa: F401,I001
import numpy as np

from imdd_mm.evaluation.functional import (StreamingPixelCurves, aupro,
                                           pixel_auroc)


def make_map(i: int, hw: int):
    """One (score, mask) pair, deterministic in ``i``."""
    rng = np.random.default_rng(1000 + i)
    mask = np.zeros((hw, hw), bool)
    if rng.random() < 0.7:
        yy, xx = np.mgrid[:hw, :hw]
        for _ in range(int(rng.integers(1, 5))):
            cy, cx = rng.integers(0, hw, 2)
            ry, rx = rng.integers(3, hw // 8, 2)
            mask |= ((yy - cy) / ry)**2 + ((xx - cx) / rx)**2 <= 1
    score = rng.beta(2, 5, (hw, hw)) + 0.35 * mask * rng.random((hw, hw))
    return np.clip(score, 0, 1).astype(np.float32), mask


def run_streaming(n: int, hw: int):
    acc = StreamingPixelCurves()
    spent = 0.0
    for i in range(n):
        score, mask = make_map(i, hw)
        t0 = time.perf_counter()
        acc.update(score, mask)
        spent += time.perf_counter() - t0
    t0 = time.perf_counter()
    result = (acc.compute(), acc.aupro(0.3))
    spent += time.perf_counter() - t0
    return spent, result


def run_exact(n: int, hw: int):
    scores = np.empty((n, hw, hw), np.float32)
    masks = np.empty((n, hw, hw), bool)
    for i in range(n):
        scores[i], masks[i] = make_map(i, hw)
    t0 = time.perf_counter()
    result = (pixel_auroc(scores, masks), aupro(scores, masks, 0.3))
    return time.perf_counter() - t0, result


def peak_mib(fn, *args) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[50, 200, 800])
    parser.add_argument('--hw', type=int, default=256)
    args = parser.parse_args()
    header = ('| maps | exact s | streaming s | speed-up | exact peak MiB | '
              'streaming peak MiB | |dP-AUROC| | |dAUPRO| |')
    print(header)
    print('|' + '---|' * 8)
    for n in args.sizes:
        t_exact, (auroc_e, aupro_e) = run_exact(n, args.hw)
        t_stream, (auroc_s, aupro_s) = run_streaming(n, args.hw)
        mem_exact = peak_mib(run_exact, n, args.hw)
        mem_stream = peak_mib(run_streaming, n, args.hw)
        print(f'| {n} | {t_exact:.2f} | {t_stream:.2f} | '
              f'{t_exact / t_stream:.1f}x | {mem_exact:.0f} | '
              f'{mem_stream:.0f} | {abs(auroc_e - auroc_s):.1e} | '
              f'{abs(aupro_e - aupro_s):.1e} |', flush=True)


if __name__ == '__main__':
    main()
