# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Run the frozen Stage-1 encoders (VAE, caption text encoder, captioner's
CLIP image tower) once over a Stage-1 config's training set and store the
outputs in shards, so Stage-1 training runs only the U-Net and the MLP.

    python tools/misc/precompute_stage1_latents.py \
        configs/imdd/stage1_imdd.py data/imdd1m_latents \
        --device cuda --batch-size 64 --num-workers 8
    bash tools/dist_train.sh configs/imdd/stage1_imdd_latents.py 8

Trade-off: augmentations are then limited to flips of the latent grid (no
random resized crop, rotation or colour jitter); see
imdd_mm/models/pretrainers/precompute.py.
"""
import imdd_mm  # noqa: F401,I001  (must precede mmdet: compat patches)

import argparse

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Precompute Stage-1 latents and embeddings')
    parser.add_argument('config', help='Stage-1 config (image mode)')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument('--shard-size', type=int, default=1024)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--num-workers', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--overwrite', action='store_true')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from imdd_mm.models.pretrainers import precompute_stage1_latents
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    index = precompute_stage1_latents(
        cfg,
        args.out_dir,
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=args.device,
        overwrite=args.overwrite)
    print(f'wrote {index["num_samples"]} samples in {len(index["shards"])} '
          f'shards to {args.out_dir}')
    return index


if __name__ == '__main__':
    main()
