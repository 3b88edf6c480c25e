# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Open-vocabulary defect inference on your own images.

Writes, per image, ``<name>_overlay.png`` (instance masks, boxes, labels and
scores), ``<name>_heatmap.png`` (per-pixel defect probability) and
``<name>.json`` (instances with RLE masks, boxes, labels, scores; the
image-level label and score). Any image cv2 decodes works: grayscale,
16-bit, RGBA, tiny ones (the config's resize upsamples them) and very large
ones (sliding-window inference over overlapping tiles). Unreadable files
are reported and skipped without stopping the batch.

A thin command line over :class:`imdd_mm.apis.DefectInferencer` (use that
class from Python).

Example:
    python tools/infer.py path/to/images configs/imdd/tiny/stage2_tiny.py \
        work_dirs/tiny/iter_40.pth --vocab "scratch,crack,stain" \
        --out outputs/infer
"""
import imdd_mm  # noqa: F401,I001  (must precede mmdet: compat patches)

import argparse
import json
import sys
from pathlib import Path

import torch
from mmengine.config import DictAction

from imdd_mm.apis import DefectInferencer
from imdd_mm.apis.image_io import (IMAGE_EXTS, atomic_write,  # noqa: F401
                                   list_images, output_stems, read_image,
                                   tile_windows)


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


def main() -> int:
    args = parse_args()
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
    inferencer = DefectInferencer(
        model=args.config,
        weights=args.checkpoint,
        vocabulary=vocab,
        device=args.device,
        cfg_options=args.cfg_options,
        tile_size=args.tile_size,
        tile_overlap=args.tile_overlap,
        max_instances=args.max_instances)
    result = inferencer(
        args.inputs,
        pred_score_thr=args.score_thr,
        out_dir=str(out_dir),
        skip_unreadable=True,
        return_score_map=False)
    done, skipped = len(result['predictions']), result['skipped']
    summary = dict(processed=done, skipped=skipped, vocabulary=vocab,
                   config=args.config, checkpoint=args.checkpoint)
    atomic_write(out_dir / 'summary.json',
                 (json.dumps(summary, indent=2) + '\n').encode())
    print(f'{done} image(s) written to {out_dir}; {len(skipped)} skipped'
          + (f' (see {out_dir / "summary.json"})' if skipped else ''))
    return 0 if done or not files else 1


if __name__ == '__main__':
    sys.exit(main())
