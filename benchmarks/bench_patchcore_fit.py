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

``--offline`` measures the cap where PatchCore beats chance without
pretrained weights: the configuration of the offline quality test
(``tests/test_models/test_anomaly/test_anomaly_quality.py::run_patchcore``:
seeded random-init ResNet-18, layer1 + layer2, 128-d, coreset 25 %, 64 px),
fitted on the first ``N`` normal images of the converter's **train** split
and scored on its whole **test** split (``--split converter``: the seeded
70/10/20 split stratified by class that
``data_converters/sources/magnetic_tile.py`` draws with its defaults, all
five defect classes + the normal test images).

Usage (about 8 minutes on 2 busy shared CPU cores with the defaults;
larger ``--images`` grow the coreset time with the square of the patches):
    python benchmarks/bench_patchcore_fit.py \
        --data-root ../shared/data/magnetic_tile --images 8 16 32 \
        --capped-images 32 --cap 12000
    OMP_NUM_THREADS=1 python benchmarks/bench_patchcore_fit.py --offline \
        --images 128 --capped-images 128 --cap 16384 8192 4096 2048 \
        --defect-classes MT_Blowhole MT_Break MT_Crack MT_Fray --threads 1
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

    train_free, test_paths, masks = select_images(root, args)
    backbone = dict(arch=args.arch, layers=tuple(args.layers),
                    checkpoint=args.checkpoint)
    if args.embed_dim:
        backbone.update(pretrain_embed_dim=args.embed_dim,
                        embed_dim=args.embed_dim)
    model = PatchCore(
        backbone=backbone, coreset_ratio=args.coreset_ratio,
        max_fit_patches=args.cap, fit_progress=False)
    model.train()
    t0 = time.perf_counter()
    train_paths = train_free[:args.num_images]
    if len(train_paths) < args.num_images:
        raise SystemExit(f'only {len(train_paths)} normal training images '
                         f'in {root}, asked for {args.num_images}')
    for i in range(0, len(train_paths), 8):
        model.train_step(batch(load(train_paths[i:i + 8])), None)
    t_extract = time.perf_counter() - t0
    patches = sum(p.shape[0] for p in model._pending)
    t0 = time.perf_counter()
    model.finalize_fit()
    t_coreset = time.perf_counter() - t0
    model.eval()
    scores = []
    with torch.no_grad():
        for i in range(0, len(test_paths), 8):
            for s in model.test_step(batch(load(test_paths[i:i + 8]))):
                scores.append(s.pred_score_map.data[0].numpy())
    n_def = sum(m is not None for m in masks)
    masks = [np.zeros(s.shape, bool) if m is None else m
             for s, m in zip(scores, masks)]
    p_auroc = auroc_exact(np.concatenate([s.ravel() for s in scores]),
                          np.concatenate([m.ravel() for m in masks]))
    # localisation inside each defective image (blind to score offsets
    # between images; the quality test's second metric)
    per_image = float(np.mean([auroc_exact(s.ravel(), m.ravel())
                               for s, m in zip(scores, masks) if m.any()]))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(images=args.num_images, cap=args.cap, patches=patches,
                test_images=f'{n_def} defective + {len(masks) - n_def} '
                f'normal',
                bank=int(model.memory_bank.shape[0]),
                extract_s=round(t_extract, 1), coreset_s=round(t_coreset, 1),
                peak_rss_mib=round(peak_mib), p_auroc=round(p_auroc, 4),
                per_image_p_auroc=round(per_image, 4),
                weights=args.checkpoint or 'random-init (seed 0)')


def select_images(root, args):
    """Normal training images, test images and their masks (``None`` for
    normal images) of ``--split``.

    ``first``: the first ``MT_Free`` images fit, ``--test-per-class``
    images of each of four defect classes and as many of the last
    ``MT_Free`` images are scored. ``converter``: the Magnetic Tile
    converter's default seeded split (``stratified_split`` of
    ``data_converters/base.py``, seed 0, 70/10/20, stratified by class
    with ``normal`` for ``MT_Free``); its train-split normals fit (in file
    order) and its whole test split is scored.
    """
    import cv2
    free = sorted((root / 'MT_Free' / 'Imgs').glob('*.jpg'))

    def mask_of(p):
        m = cv2.imread(str(p.with_suffix('.png')), cv2.IMREAD_GRAYSCALE)
        if m is None:
            raise SystemExit(f'{p.with_suffix(".png")}: missing mask')
        return m > 127

    if args.split == 'first':
        test_paths, masks = [], []
        for cls in ('MT_Blowhole', 'MT_Crack', 'MT_Break', 'MT_Fray'):
            for p in sorted((root / cls / 'Imgs').glob('*.jpg'))[
                    :args.test_per_class]:
                test_paths.append(p)
                masks.append(mask_of(p))
        for p in free[-args.test_per_class * 4:]:
            test_paths.append(p)
            masks.append(None)
        return free, test_paths, masks
    from data_converters.base import DEFAULT_RATIOS, stratified_split
    from data_converters.sources.magnetic_tile import FOLDERS
    rels, keys = [], []
    for folder in sorted(FOLDERS):
        for p in sorted((root / folder / 'Imgs').glob('*.jpg')):
            rels.append(f'{folder}/Imgs/{p.name}')
            keys.append(FOLDERS[folder] or 'normal')
    if not rels:
        raise SystemExit(f'{root}: no MT_<Class>/Imgs/*.jpg images')
    order = sorted(range(len(rels)), key=lambda i: rels[i])
    rels = [rels[i] for i in order]
    keys = [keys[i] for i in order]
    splits = stratified_split(keys, DEFAULT_RATIOS, 0, order=rels)
    train_free = [root / r for r, k, s in zip(rels, keys, splits)
                  if s == 'train' and k == 'normal']
    test_paths, masks = [], []
    for r, k, s in zip(rels, keys, splits):
        if s == 'test' and (k == 'normal' or r.split('/')[0] in
                            args.defect_classes):
            test_paths.append(root / r)
            masks.append(None if k == 'normal' else mask_of(root / r))
    return train_free, test_paths, masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='../shared/data/magnetic_tile')
    parser.add_argument('--images', type=int, nargs='+', default=[8, 16, 32])
    parser.add_argument('--capped-images', type=int, nargs='*',
                        default=[32])
    parser.add_argument('--cap', type=int, nargs='+', default=[12000],
                        help='max_fit_patches values, each run on every '
                        '--capped-images')
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--test-per-class', type=int, default=2)
    parser.add_argument('--split', choices=('first', 'converter'),
                        default='first')
    parser.add_argument('--defect-classes', nargs='+', default=[
        'MT_Blowhole', 'MT_Break', 'MT_Crack', 'MT_Fray', 'MT_Uneven'
    ], help='defect folders of the test split scored (--split converter)')
    parser.add_argument('--arch', default='wide_resnet50_2')
    parser.add_argument('--layers', nargs='+', default=['layer2', 'layer3'])
    parser.add_argument('--embed-dim', type=int, default=0,
                        help='pretrain_embed_dim = embed_dim (0: 1024)')
    parser.add_argument('--coreset-ratio', type=float, default=0.1)
    parser.add_argument('--offline', action='store_true',
                        help='the offline quality-test configuration: '
                        'resnet18 layer1+2, 128-d, coreset 0.25, 64 px, '
                        '--split converter')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--num-images', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.offline:
        args.arch, args.layers, args.embed_dim = 'resnet18', [
            'layer1', 'layer2'
        ], 128
        args.coreset_ratio, args.size, args.split = 0.25, 64, 'converter'
    if args.child:
        args.cap = None if args.cap[0] <= 0 else args.cap[0]
        print('RESULT ' + json.dumps(run_one(args)), flush=True)
        return
    settings = [(n, 0) for n in args.images] + [
        (n, c) for n in args.capped_images for c in args.cap]
    rows = []
    for n, cap in settings:
        cmd = [sys.executable, __file__, '--child', '--num-images', str(n),
               '--cap', str(cap), '--data-root', args.data_root, '--size',
               str(args.size), '--test-per-class', str(args.test_per_class),
               '--threads', str(args.threads), '--split', args.split,
               '--defect-classes', *args.defect_classes,
               '--arch', args.arch, '--layers', *args.layers,
               '--embed-dim', str(args.embed_dim), '--coreset-ratio',
               str(args.coreset_ratio)]
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
          '| peak RSS MiB | P-AUROC | per-image P-AUROC |')
    print('|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['images']} | {r['cap'] or 'none'} | {r['patches']} | "
              f"{r['bank']} | {r['extract_s']} | {r['coreset_s']} | "
              f"{r['peak_rss_mib']} | {r['p_auroc']:.3f} | "
              f"{r['per_image_p_auroc']:.3f} |")
    print(f"\nweights: {rows[0]['weights']}; {args.arch} "
          f"{'+'.join(args.layers)}, {args.embed_dim or 1024}-d, coreset "
          f"{args.coreset_ratio}; size {args.size} px; split {args.split} "
          f"(test: {rows[0]['test_images']}); {args.threads} threads")


if __name__ == '__main__':
    main()
