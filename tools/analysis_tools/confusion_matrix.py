# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Image-level confusion matrix of the defect classes plus "normal" (as
mmdet's ``tools/analysis_tools/confusion_matrix.py``, at image level).

Rows are the true class of each test image (``normal`` for a defect-free
image; for an image with defects of several classes, the class covering
most pixels, or the converter's image-level label where it set one), columns
the model's ``pred_image_label``. Predictions come from a ``--out`` pickle of
``tools/test.py``; the ground truth from the same config's test dataset.

Usage::

    python tools/test.py CONFIG CKPT --out work_dirs/results.pkl
    python tools/analysis_tools/confusion_matrix.py CONFIG \\
        work_dirs/results.pkl work_dirs/confusion

Writes ``confusion_matrix.png`` (rows normalised to percentages, counts in
each cell) and ``confusion_matrix.json`` (counts, per-class recall and
precision, accuracy).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from mmengine.config import DictAction

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='image-level confusion matrix')
    p.add_argument('config', help='the config tools/test.py ran')
    p.add_argument('prediction_path', help='its --out pickle')
    p.add_argument('save_dir', help='where the figure and JSON go')
    p.add_argument('--color-theme', default='plasma')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='key=value overrides, as given to tools/test.py')
    return p.parse_args(argv)


def confusion_matrix(pairs, num_classes: int) -> np.ndarray:
    """(K+1, K+1) counts; index K is "normal" (label -1)."""
    mat = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    for true, pred in pairs:
        for v in (true, pred):
            if not -1 <= v < num_classes:
                raise ValueError(f'label {v} outside the {num_classes} '
                                 'classes (and -1 = normal)')
        mat[true if true >= 0 else num_classes,
            pred if pred >= 0 else num_classes] += 1
    return mat


def summary(mat: np.ndarray, names) -> dict:
    tp = np.diag(mat).astype(float)
    rows, cols = mat.sum(1), mat.sum(0)
    with np.errstate(invalid='ignore', divide='ignore'):
        recall = np.where(rows > 0, tp / rows, np.nan)
        precision = np.where(cols > 0, tp / cols, np.nan)
    return dict(
        classes=list(names),
        matrix=mat.tolist(),
        accuracy=float(tp.sum() / max(mat.sum(), 1)),
        recall={n: (None if np.isnan(r) else float(r))
                for n, r in zip(names, recall)},
        precision={n: (None if np.isnan(p) else float(p))
                   for n, p in zip(names, precision)},
        images=int(mat.sum()))


def plot(mat: np.ndarray, names, path: Path, cmap: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = mat.sum(1, keepdims=True)
    pct = np.divide(100.0 * mat, rows, out=np.zeros(mat.shape),
                    where=rows > 0)
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.1 * n + 2, 1.0 * n + 1.5))
    im = ax.imshow(pct, cmap=cmap, vmin=0, vmax=100)
    fig.colorbar(im, ax=ax, label='% of the true class')
    ax.set_xticks(range(n), names, rotation=45, ha='right')
    ax.set_yticks(range(n), names)
    ax.set_xlabel('predicted')
    ax.set_ylabel('true')
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f'{pct[i, j]:.0f}%\n({mat[i, j]})', ha='center',
                    va='center', fontsize=8,
                    color='white' if pct[i, j] < 50 else 'black')
    ax.set_title('image-level confusion matrix')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    import imdd_mm  # noqa: F401
    from imdd_mm.evaluation.offline import (build_test_dataset,
                                            image_class_pair, load_results,
                                            paired_samples)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    results = load_results(args.prediction_path)
    dataset = build_test_dataset(cfg)
    pairs = [image_class_pair(pred, gt)
             for pred, gt in paired_samples(dataset, results)]
    classes = tuple(dataset.metainfo['classes'])
    names = list(classes) + ['normal']
    mat = confusion_matrix(pairs, len(classes))
    out = Path(args.save_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = summary(mat, names)
    (out / 'confusion_matrix.json').write_text(json.dumps(info, indent=2))
    plot(mat, names, out / 'confusion_matrix.png', args.color_theme)
    print(f'{info["images"]} images, accuracy {info["accuracy"]:.3f}; '
          f'wrote {out / "confusion_matrix.png"} and '
          f'{out / "confusion_matrix.json"}')
    return info


if __name__ == '__main__':
    main()
