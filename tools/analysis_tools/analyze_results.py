# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Best and worst test images by per-image defect IoU (as mmdet's
``tools/analysis_tools/analyze_results.py``, ranked by IoU instead of mAP).

The per-image IoU compares the pixels predicted as any defect class
(``pred_sem_seg > 0``) with the union of the true defect masks; a normal
image predicted normal scores 1.0 and a false alarm on a normal image 0.0.
Ties are broken by image path, so reruns give the same lists.

Usage::

    python tools/test.py CONFIG CKPT --out work_dirs/results.pkl
    python tools/analysis_tools/analyze_results.py CONFIG \\
        work_dirs/results.pkl work_dirs/analysis --topk 20

Writes ``SHOW_DIR/good/`` and ``SHOW_DIR/bad/`` (the top-k and bottom-k
images: prediction overlay | ground truth | heat map, side by side) and
``SHOW_DIR/per_image_iou.json`` (every image, worst first).
"""
import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from mmengine.config import DictAction

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='best/worst images by IoU')
    p.add_argument('config', help='the config tools/test.py ran')
    p.add_argument('prediction_path', help='its --out pickle')
    p.add_argument('show_dir', help='where the images and JSON go')
    p.add_argument('--topk', type=int, default=20,
                   help='images in each of good/ and bad/')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='key=value overrides, as given to tools/test.py')
    return p.parse_args(argv)


def rank(records: list) -> list:
    """Worst first; ties by path (deterministic)."""
    return sorted(records, key=lambda r: (r['iou'], r['img_path']))


def _panel(img_path: str, pred: dict, gt, names) -> np.ndarray:
    from imdd_mm.evaluation.metrics.sample_utils import (gt_defect_mask,
                                                         to_numpy)
    from imdd_mm.visualization.overlay import (draw_heatmap, draw_instances,
                                               to_rgb_uint8)
    image = cv2.imread(img_path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(f'{img_path}: cannot read the test image')
    rgb = to_rgb_uint8(image)
    sem = to_numpy(pred['pred_sem_seg']['sem_seg'])
    sem = sem.reshape(sem.shape[-2:])
    present = [int(v) for v in np.unique(sem) if v > 0]
    masks = np.stack([sem == v for v in present]) if present else None
    pred_img = draw_instances(rgb, masks, [v - 1 for v in present], names)
    gt_img = draw_instances(rgb, gt_defect_mask(gt, sem.shape)[None], [0],
                            ['defect'])
    score = pred.get('pred_score_map', {}).get('data')
    heat = draw_heatmap(rgb, to_numpy(score).reshape(sem.shape)) \
        if score is not None else rgb
    return np.concatenate([pred_img, gt_img, heat], axis=1)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    import imdd_mm  # noqa: F401
    from imdd_mm.evaluation.offline import (build_test_dataset, defect_iou,
                                            load_results, paired_samples)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    results = load_results(args.prediction_path)
    dataset = build_test_dataset(cfg)
    names = tuple(dataset.metainfo['classes'])
    pairs = list(paired_samples(dataset, results))
    records = rank([
        dict(img_path=pred['img_path'], iou=defect_iou(pred, gt))
        for pred, gt in pairs
    ])
    by_path = {pred['img_path']: (pred, gt) for pred, gt in pairs}
    out = Path(args.show_dir)
    k = min(args.topk, len(records))
    for sub, chosen in (('bad', records[:k]), ('good', records[::-1][:k])):
        folder = out / sub
        folder.mkdir(parents=True, exist_ok=True)
        for rank_i, rec in enumerate(chosen):
            pred, gt = by_path[rec['img_path']]
            panel = _panel(rec['img_path'], pred, gt, names)
            name = f'{rank_i:03d}_iou{rec["iou"]:.3f}_' \
                f'{Path(rec["img_path"]).stem}.png'
            cv2.imwrite(str(folder / name), panel[..., ::-1])
    (out / 'per_image_iou.json').write_text(json.dumps(records, indent=2))
    mean = float(np.mean([r['iou'] for r in records]))
    print(f'{len(records)} images, mean per-image IoU {mean:.3f}; worst '
          f'{records[0]["iou"]:.3f} ({records[0]["img_path"]}), best '
          f'{records[-1]["iou"]:.3f}; wrote {out}')
    return records


if __name__ == '__main__':
    main()
