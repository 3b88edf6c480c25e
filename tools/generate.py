# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Text-guided defect image generation with a Stage-1 model (paper §5.2).

Writes ``OUT/000000.png ...`` and ``OUT/generation.json`` (prompts, seeds,
settings); image ``p * num + k`` (copy k of prompt p) uses seed
``seed + p * num + k``, so results do not depend on the batch size.
Optionally scores the images with IS and, against a folder of real images,
FID (Inception weights from a local file).

Examples:
    python tools/generate.py configs/imdd/stage1_imdd.py \
        work_dirs/stage1_imdd/epoch_100.pth \
        --prompt "metal surface with oxidation" \
        --prompt "bottle with contamination" --num 16 --out gen/ \
        --seed 0 --guidance 7.5 --steps 50 --scheduler ddim
    python tools/generate.py CONFIG CKPT --prompt-file prompts.txt --num 100 \
        --out gen/ --inception-weights inception_v3.pth --fid-real real_dir/
"""
import imdd_mm  # noqa: F401,I001  (must precede mmdet: compat patches)

import argparse
import json
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate defect images from text with a Stage-1 model')
    parser.add_argument('config', help='Stage-1 config file')
    parser.add_argument(
        'checkpoint',
        help='Stage-1 checkpoint (.pth) or exported diffusers folder')
    parser.add_argument(
        '--prompt', action='append', default=[],
        help='a prompt (repeatable)')
    parser.add_argument(
        '--prompt-file', help='text file with one prompt per line')
    parser.add_argument(
        '--num', type=int, default=1, help='images per prompt')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--seed', type=int, default=0, help='base seed')
    parser.add_argument(
        '--guidance', type=float, default=None,
        help='classifier-free guidance scale (<= 1: off)')
    parser.add_argument(
        '--steps', type=int, default=None, help='denoising steps')
    parser.add_argument(
        '--scheduler', choices=['ddim', 'ddpm'], default=None)
    parser.add_argument('--eta', type=float, default=0.0, help='DDIM eta')
    parser.add_argument('--batch-size', type=int, default=None)
    parser.add_argument('--height', type=int, default=None)
    parser.add_argument('--width', type=int, default=None)
    parser.add_argument(
        '--no-ema', action='store_true',
        help='use the online instead of the EMA weights')
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--fp16', action='store_true', help='run U-Net and VAE in fp16')
    parser.add_argument(
        '--inception-weights',
        help='local torchvision inception_v3 state dict: report IS (and FID '
        'with --fid-real)')
    parser.add_argument(
        '--fid-real', help='folder of real images for FID')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from imdd_mm.generation import (DefectGenerationPipeline,
                                    generate_to_dir, read_prompt_file)

    prompts = list(args.prompt)
    if args.prompt_file:
        prompts += read_prompt_file(args.prompt_file)
    if not prompts:
        sys.exit('error: give at least one --prompt or a --prompt-file')
    if args.num < 1:
        sys.exit(f'error: --num must be >= 1, got {args.num}')
    if args.fid_real and not args.inception_weights:
        sys.exit('error: --fid-real needs --inception-weights')

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    gen_cfg = dict(cfg.get('generation', None) or {})

    def pick(value, key, default):
        return value if value is not None else gen_cfg.get(key, default)

    settings = dict(
        height=pick(args.height, 'height', 512),
        width=pick(args.width, 'width', 512),
        num_inference_steps=pick(args.steps, 'num_inference_steps', 50),
        guidance_scale=pick(args.guidance, 'guidance_scale', 7.5),
        scheduler=pick(args.scheduler, 'scheduler', 'ddim'),
        batch_size=pick(args.batch_size, 'batch_size', 8),
        eta=args.eta)

    pipe = DefectGenerationPipeline.from_config(
        cfg, args.checkpoint, use_ema=not args.no_ema, device=args.device)
    if args.fp16:
        pipe.unet.half()
        pipe.vae.half()
    manifest = generate_to_dir(
        pipe,
        prompts,
        args.num,
        args.out,
        seed=args.seed,
        extra=dict(
            config=osp.abspath(args.config),
            checkpoint=osp.abspath(args.checkpoint),
            ema=not args.no_ema,
            fp16=bool(args.fp16),
            device=str(args.device)),
        **settings)
    print(f'wrote {len(manifest["images"])} images to {args.out}')

    if args.inception_weights:
        from imdd_mm.generation import (FIDISCalculator, load_image_folder,
                                        load_images)
        from imdd_mm.generation.writer import _atomic_bytes
        calc = FIDISCalculator(args.inception_weights, device=args.device)
        gen = load_images(
            [osp.join(args.out, im['file']) for im in manifest['images']])
        real = load_image_folder(
            args.fid_real, size=settings['height']) if args.fid_real \
            else None
        scores = calc(gen, real)
        scores['inception_weights'] = osp.abspath(args.inception_weights)
        _atomic_bytes(
            osp.join(args.out, 'metrics.json'),
            (json.dumps(scores, indent=2) + '\n').encode('utf-8'))
        print(json.dumps(scores, indent=2))
        manifest['metrics'] = scores
    return manifest


if __name__ == '__main__':
    main()
