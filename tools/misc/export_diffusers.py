# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Export a Stage-1 checkpoint (EMA U-Net, VAE, captioner MLP, scheduler) to
a diffusers folder.

    python tools/misc/export_diffusers.py work_dirs/stage1_imdd/epoch_100.pth \
        exports/imdd_stage1

Stage-2 configs then use
``model.backbone.stage1_checkpoint='exports/imdd_stage1'`` (or
``unet=dict(pretrained='exports/imdd_stage1')``), and diffusers loads
``UNet2DConditionModel.from_pretrained(OUT, subfolder='unet')``.
The config is read from the checkpoint's meta unless --config is given.
"""
import imdd_mm  # noqa: F401,I001  (must precede mmdet: compat patches)

import argparse

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a Stage-1 checkpoint to a diffusers folder')
    parser.add_argument('checkpoint', help='Stage-1 checkpoint (.pth)')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument(
        '--config', help='Stage-1 config (default: the one in the '
        'checkpoint meta)')
    parser.add_argument(
        '--no-ema', action='store_true', help='export the online weights')
    parser.add_argument(
        '--no-vae', action='store_true', help='do not save the VAE')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace OUT_DIR')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    from imdd_mm.models.pretrainers import (export_stage1_to_diffusers,
                                            stage1_config_from_checkpoint)
    cfg = Config.fromfile(args.config) if args.config else \
        stage1_config_from_checkpoint(args.checkpoint)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    out = export_stage1_to_diffusers(
        args.checkpoint,
        args.out_dir,
        cfg=cfg,
        use_ema=not args.no_ema,
        with_vae=not args.no_vae,
        overwrite=args.overwrite)
    print(f'exported {args.checkpoint} to {out}')
    return out


if __name__ == '__main__':
    main()
