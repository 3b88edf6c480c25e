# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Open-vocabulary defect inference on your own images.

Writes, per image, ``<name>_overlay.png`` (instance masks, boxes, labels and
scores), ``<name>_heatmap.png`` (per-pixel defect probability) and
``<name>.json`` (instances with RLE masks, boxes, labels, scores; the
image-level label and score). Any image cv2 decodes works: grayscale,
16-bit, RGBA, tiny ones (the config's resize upsamples them) and very large
ones (sliding-window inference over overlapping tiles). Unreadable files
are reported and skipped without stopping the batch.

Example:
    python tools/infer.py path/to/images configs/imdd/tiny/stage2_tiny.py \
        work_dirs/tiny/iter_40.pth --vocab "scratch,crack,stain" \
        --out outputs/infer
"""
import imdd_mm  # noqa: F401,I001  (must precede mmdet: compat patches)

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_util
import torch
from mmcv.ops import batched_nms
from mmcv.transforms import Compose
from mmengine.config import DictAction
from tqdm import tqdm

from imdd_mm.visualization.overlay import (draw_heatmap, draw_instances,
                                           encode_png, to_rgb_uint8)

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def parse_args():
    parser = argparse.ArgumentParser(
        description='Open-vocabulary defect inference on images')
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('config', help='model config')
    parser.add_argument('checkpoint', help='Stage-2 checkpoint')
    parser.add_argument(
        '--vocab',
        required=True,
        help='comma-separated defect names, e.g. "scratch,crack,stain"; '
        'names never seen in training are allowed')
    parser.add_argument('--out', default='outputs/infer', help='output dir')
    parser.add_argument('--device', default='cuda:0' if
                        torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--score-thr', type=float, default=0.3,
        help='instances below this score are not drawn or saved')
    parser.add_argument(
        '--tile-size', type=int, default=1024,
        help='images larger than this (either side) run as overlapping '
        'tiles of this size')
    parser.add_argument('--tile-overlap', type=float, default=0.25)
    parser.add_argument('--max-instances', type=int, default=100)
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, as in tools/test.py')
    return parser.parse_args()


def list_images(inputs: str,
                exclude: Optional[Path] = None) -> Tuple[Path, List[Path]]:
    """The input root and its image files (recursive, sorted), without the
    files under ``exclude`` (the output folder, so that a rerun does not
    read its own overlays)."""
    path = Path(inputs)
    if path.is_file():
        return path.parent, [path]
    if not path.is_dir():
        raise FileNotFoundError(f'{inputs}: no such file or folder')
    skip = exclude.resolve() if exclude is not None else None
    files = sorted(
        p for p in path.rglob('*')
        if p.suffix.lower() in IMAGE_EXTS and p.is_file() and not (
            skip is not None and skip in p.resolve().parents))
    return path, files


def output_stems(root: Path, files: List[Path]) -> Dict[Path, Path]:
    """Output stem (relative, without suffix) of each input; ``a.png`` and
    ``a.jpg`` in one folder become ``a_png`` and ``a_jpg``."""
    stems = [p.relative_to(root).with_suffix('') for p in files]
    clash = {s for s in stems if stems.count(s) > 1}
    return {
        p: (s.with_name(f'{s.name}_{p.suffix.lstrip(".").lower()}')
            if s in clash else s)
        for p, s in zip(files, stems)
    }


def read_image(path: Path) -> np.ndarray:
    """Decode any supported image to (H, W, 3) uint8 BGR (the pipeline's
    convention); raises ``ValueError`` naming the file when unreadable."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(f'{path}: not a readable image (empty, truncated '
                         'or an unsupported format)')
    return np.ascontiguousarray(to_rgb_uint8(image)[..., ::-1])


def build_pipeline(cfg) -> Compose:
    """The config's test pipeline for in-memory images, without ground
    truth loading."""
    pipeline = []
    for step in cfg.test_dataloader.dataset.pipeline:
        kind = step['type'].split('.')[-1]
        if kind == 'LoadImageFromFile':
            pipeline.append(dict(type='mmdet.LoadImageFromNDArray'))
        elif kind != 'LoadAnnotations':
            pipeline.append(dict(step))
    return Compose(pipeline)


def tile_windows(height: int, width: int, tile: int,
                 overlap: float) -> List[Tuple[int, int, int, int]]:
    """Windows ``(x0, y0, x1, y1)`` covering the image; neighbours overlap
    by at least ``overlap * tile`` pixels. An image no larger than ``tile``
    is one window."""
    if tile < 1:
        raise ValueError(f'tile size must be >= 1, got {tile}')
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f'tile overlap must be in [0, 1), got {overlap}')
    if max(height, width) <= tile:
        return [(0, 0, width, height)]
    step = max(1, int(tile * (1 - overlap)))

    def starts(size):
        if size <= tile:
            return [0]
        pos = list(range(0, size - tile, step)) + [size - tile]
        return sorted(set(pos))

    return [(x, y, min(x + tile, width), min(y + tile, height))
            for y in starts(height) for x in starts(width)]


@torch.no_grad()
def predict_image(model, pipeline, image: np.ndarray, tile: int,
                  overlap: float, max_instances: int) -> Dict:
    """Run the model on one image, tiled when it is large.

    Returns:
        dict: ``masks`` (N, H, W) bool, ``labels`` (N,), ``scores`` (N,),
        ``boxes`` (N, 4) xyxy, ``score_map`` (H, W), ``image_label`` (int,
        -1 normal), ``image_score`` (float), ``tiles`` (int).
    """
    height, width = image.shape[:2]
    windows = tile_windows(height, width, tile, overlap)
    score_map = np.zeros((height, width), np.float32)
    found = []  # (window, tile mask, label, score, box in image coords)
    image_score, image_label = 0.0, -1
    for x0, y0, x1, y1 in windows:
        data = pipeline(dict(img=image[y0:y1, x0:x1].copy(), img_id=0))
        batch = dict(inputs=[data['inputs']],
                     data_samples=[data['data_samples']])
        sample = model.test_step(batch)[0]
        tile_scores = sample.pred_score_map.data[0].cpu().numpy()
        score_map[y0:y1, x0:x1] = np.maximum(score_map[y0:y1, x0:x1],
                                             tile_scores)
        if float(sample.get('pred_image_score', 0.0)) > image_score:
            image_score = float(sample.pred_image_score)
            image_label = int(sample.get('pred_image_label', -1))
        pred = sample.pred_instances
        masks = pred.masks.cpu().numpy().astype(bool)
        for mask, label, score in zip(masks, pred.labels.tolist(),
                                      pred.scores.tolist()):
            ys, xs = np.nonzero(mask)
            if len(xs) == 0:
                continue
            box = [xs.min() + x0, ys.min() + y0, xs.max() + 1 + x0,
                   ys.max() + 1 + y0]
            found.append(((x0, y0, x1, y1), mask, label, score, box))
    keep = list(range(len(found)))
    if len(windows) > 1 and found:
        # instances cut by tile borders appear in several tiles: NMS
        boxes = torch.tensor([f[4] for f in found], dtype=torch.float32)
        scores = torch.tensor([f[3] for f in found], dtype=torch.float32)
        labels = torch.tensor([f[2] for f in found])
        _, keep_t = batched_nms(boxes, scores, labels,
                                dict(type='nms', iou_threshold=0.5))
        keep = keep_t.tolist()
    keep = sorted(keep, key=lambda i: -found[i][3])[:max_instances]
    masks = np.zeros((len(keep), height, width), bool)
    for row, i in enumerate(keep):
        (x0, y0, x1, y1), mask = found[i][0], found[i][1]
        masks[row, y0:y1, x0:x1] = mask
    return dict(
        masks=masks,
        labels=np.array([found[i][2] for i in keep], np.int64),
        scores=np.array([found[i][3] for i in keep], np.float32),
        boxes=np.array([found[i][4] for i in keep],
                       np.float32).reshape(-1, 4),
        score_map=score_map,
        image_label=image_label,
        image_score=image_score,
        tiles=len(windows))


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_outputs(out_stem: Path, image_bgr: np.ndarray, result: Dict,
                 vocab: List[str], score_thr: float, source: str) -> Dict:
    rgb = np.ascontiguousarray(image_bgr[..., ::-1])
    keep = result['scores'] >= score_thr
    masks, labels = result['masks'][keep], result['labels'][keep]
    scores, boxes = result['scores'][keep], result['boxes'][keep]
    overlay = draw_instances(rgb, masks, labels, vocab, scores, boxes)
    _atomic_write(out_stem.with_name(out_stem.name + '_overlay.png'),
                  encode_png(overlay))
    _atomic_write(out_stem.with_name(out_stem.name + '_heatmap.png'),
                  encode_png(draw_heatmap(rgb, result['score_map'])))
    instances = []
    for mask, label, score, box in zip(masks, labels, scores, boxes):
        rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
        instances.append(
            dict(label=vocab[int(label)], label_id=int(label),
                 score=round(float(score), 6),
                 bbox_xyxy=[round(float(v), 2) for v in box],
                 area=int(mask.sum()),
                 mask_rle=dict(size=[int(s) for s in rle['size']],
                               counts=rle['counts'].decode('ascii'))))
    label = result['image_label']
    record = dict(
        image=source,
        height=int(rgb.shape[0]),
        width=int(rgb.shape[1]),
        vocabulary=vocab,
        tiles=result['tiles'],
        image_label='normal' if label < 0 else vocab[label],
        image_score=round(float(result['image_score']), 6),
        max_defect_probability=round(float(result['score_map'].max()), 6),
        score_thr=score_thr,
        instances=instances)
    _atomic_write(out_stem.with_name(out_stem.name + '.json'),
                  (json.dumps(record, indent=2) + '\n').encode())
    return record


def main() -> int:
    args = parse_args()
    from mmdet.apis import init_detector
    vocab = [v.strip() for v in args.vocab.split(',') if v.strip()]
    if not vocab:
        raise SystemExit('--vocab needs at least one name')
    try:  # check the tiling arguments before loading the model
        tile_windows(1, 1, args.tile_size, args.tile_overlap)
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    out_dir = Path(args.out)
    root, files = list_images(args.inputs, exclude=out_dir)
    if not files:
        raise SystemExit(f'{args.inputs}: no images ({", ".join(IMAGE_EXTS)})')
    from imdd_mm.utils.provenance import (check_frozen_sources,
                                          checkpoint_frozen_sources,
                                          prepare_frozen_sources)
    from imdd_mm.utils.run_record import load_run_config
    # '${category}' strings follow --cfg-options category=<name>
    cfg = load_run_config(args.config, args.cfg_options)
    # the checkpoint's recorded Stage-1 checkpoint when the config has none
    prepare_frozen_sources(cfg, args.checkpoint)
    model = init_detector(cfg, args.checkpoint, device=args.device)
    check_frozen_sources(
        model.frozen_sources(), checkpoint_frozen_sources(args.checkpoint),
        override=bool(cfg.model.get('override_frozen_sources', False)),
        source=args.checkpoint)
    model.set_vocabulary(vocab)
    pipeline = build_pipeline(model.cfg)
    stems = output_stems(root, files)
    skipped, done = [], 0
    for path in tqdm(files, desc='infer', unit='img'):
        rel = stems[path]
        try:
            image = read_image(path)
            result = predict_image(model, pipeline, image, args.tile_size,
                                   args.tile_overlap, args.max_instances)
        except (ValueError, OSError, cv2.error) as err:
            skipped.append(dict(file=str(path), reason=str(err)))
            tqdm.write(f'skipped {path}: {err}')
            continue
        save_outputs(out_dir / rel, image, result, vocab, args.score_thr,
                     str(path))
        done += 1
    summary = dict(processed=done, skipped=skipped, vocabulary=vocab,
                   config=args.config, checkpoint=args.checkpoint)
    _atomic_write(out_dir / 'summary.json',
                  (json.dumps(summary, indent=2) + '\n').encode())
    print(f'{done} image(s) written to {out_dir}; {len(skipped)} skipped'
          + (f' (see {out_dir / "summary.json"})' if skipped else ''))
    return 0 if done or not files else 1


if __name__ == '__main__':
    sys.exit(main())
