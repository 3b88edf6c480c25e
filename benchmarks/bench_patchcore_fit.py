# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""PatchCore memory-bank fit: time and peak memory against the number of
training images, with and without the ``max_fit_patches`` cap, and the
cap's effect on P-AUROC, measured side by side in one run.

Each setting runs in its own fresh subprocess (so the peak resident memory,
``ru_maxrss``, is that setting's own): PatchCore with a WideResNet-50
(layer2 + layer3, 1024-d, 3x3 aggregation), coreset 10 %, 128-d random
projection, fitted on the first ``N`` ``MT_Free`` images of real Magnetic
Tile data resized to ``--size``, then scored on a fixed test set
(``--test-per-class`` images of each defect class + as many normal ones).
Reported: feature-extraction time, coreset time, patches, bank size, peak
RSS, P-AUROC (exact, pixels at the original image size).

Weights: ``--checkpoint`` (torchvision ``wide_resnet50_2`` state dict);
without it the backbone is random-init (seeded), which leaves time and
memory unchanged but makes P-AUROC that of random features: the table says
which was used.

Usage (about 8 minutes on 2 busy shared CPU cores with the defaults;
larger ``--images`` grow the coreset time with the square of the patches):
    python benchmarks/bench_patchcore_fit.py \
        --data-root ../shared/data/magnetic_tile --images 8 16 32 \
        --capped-images 32 --cap 12000
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time


def run_one(args) -> dict:
    """One setting, in this process."""
    from pathlib import Path

    import cv2
    import numpy as np
    import torch

    import imdd_mm  # noqa: F401
    from mmdet.structures import DetDataSample
    from imdd_mm.evaluation.functional.ranking import auroc_exact
    from imdd_mm.models.anomaly import PatchCore

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    root = Path(args.data_root)
    size = args.size

    def load(paths):
        items = []
        for p in paths:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            ori = img.shape[:2]
            img = cv2.resize(img, (size, size))
            items.append((p, torch.from_numpy(img).permute(2, 0, 1), ori))
        return items

    def batch(items):
        samples = []
        for p, _, ori in items:
            s = DetDataSample()
            s.set_metainfo(dict(img_path=str(p), ori_shape=ori,
                                img_shape=(size, size)))
            samples.append(s)
        return dict(inputs=[i for _, i, _ in items], data_samples=samples)

    free = sorted((root / 'MT_Free' / 'Imgs').glob('*.jpg'))
    model = PatchCore(
        backbone=dict(arch='wide_resnet50_2', checkpoint=args.checkpoint),
        coreset_ratio=0.1, max_fit_patches=args.cap, fit_progress=False)
    model.train()
    t0 = time.perf_counter()
    train_paths = free[:args.num_images]
    for i in range(0, len(train_paths), 8):
        model.train_step(batch(load(train_paths[i:i + 8])), None)
    t_extract = time.perf_counter() - t0
    patches = sum(p.shape[0] for p in model._pending)
    t0 = time.perf_counter()
    model.finalize_fit()
    t_coreset = time.perf_counter() - t0
    # fixed test set: defects + normals never used for fitting
    test_paths, masks = [], []
    for cls in ('MT_Blowhole', 'MT_Crack', 'MT_Break', 'MT_Fray'):
        for p in sorted((root / cls / 'Imgs').glob('*.jpg'))[
                :args.test_per_class]:
            test_paths.append(p)
            masks.append(cv2.imread(str(p.with_suffix('.png')),
                                    cv2.IMREAD_GRAYSCALE) > 127)
    for p in free[-args.test_per_class * 4:]:
        test_paths.append(p)
        masks.append(None)
    model.eval()
    scores = []
    with torch.no_grad():
        for i in range(0, len(test_paths), 8):
            for s in model.test_step(batch(load(test_paths[i:i + 8]))):
                scores.append(s.pred_score_map.data[0].numpy())
    masks = [np.zeros(s.shape, bool) if m is None else m
             for s, m in zip(scores, masks)]
    p_auroc = auroc_exact(np.concatenate([s.ravel() for s in scores]),
                          np.concatenate([m.ravel() for m in masks]))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(images=args.num_images, cap=args.cap, patches=patches,
                bank=int(model.memory_bank.shape[0]),
                extract_s=round(t_extract, 1), coreset_s=round(t_coreset, 1),
                peak_rss_mib=round(peak_mib), p_auroc=round(p_auroc, 4),
                weights=args.checkpoint or 'random-init (seed 0)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='../shared/data/magnetic_tile')
    parser.add_argument('--images', type=int, nargs='+', default=[8, 16, 32])
    parser.add_argument('--capped-images', type=int, nargs='*',
                        default=[32])
    parser.add_argument('--cap', type=int, default=12000)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--test-per-class', type=int, default=2)
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--num-images', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.cap = None if args.cap <= 0 else args.cap
        print('RESULT ' + json.dumps(run_one(args)), flush=True)
        return
    settings = [(n, 0) for n in args.images] + [(n, args.cap)
                                                 for n in args.capped_images]
    rows = []
    for n, cap in settings:
        cmd = [sys.executable, __file__, '--child', '--num-images', str(n),
               '--cap', str(cap), '--data-root', args.data_root, '--size',
               str(args.size), '--test-per-class', str(args.test_per_class),
               '--threads', str(args.threads)]
        if args.checkpoint:
            cmd += ['--checkpoint', args.checkpoint]
        out = subprocess.run(cmd, capture_output=True, text=True,
                             env=dict(os.environ), check=False)
        line = [ln for ln in out.stdout.splitlines()
                if ln.startswith('RESULT ')]
        if out.returncode != 0 or not line:
            sys.stderr.write(out.stderr[-3000:])
            raise SystemExit(f'setting images={n} cap={cap} failed')
        rows.append(json.loads(line[0][7:]))
        print(json.dumps(rows[-1]), flush=True)
    print('\n| train images | cap | patches | bank | extract s | coreset s '
          '| peak RSS MiB | P-AUROC |')
    print('|---|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['images']} | {r['cap'] or 'none'} | {r['patches']} | "
              f"{r['bank']} | {r['extract_s']} | {r['coreset_s']} | "
              f"{r['peak_rss_mib']} | {r['p_auroc']:.3f} |")
    print(f"\nweights: {rows[0]['weights']}; size {args.size} px; "
          f"{args.threads} threads")


if __name__ == '__main__':
    main()
