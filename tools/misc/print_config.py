# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Print the fully resolved config (``_base_`` and ``--cfg-options``
applied), as MMDetection's ``tools/misc/print_config.py`` does.

Example:
    python tools/misc/print_config.py configs/imdd/stage2_mvtec.py \
        --cfg-options model.backbone.timestep=100
"""
import imdd_mm  # noqa: F401,I001  (must precede mmdet: compat patches)

import argparse

from mmengine import Config, DictAction


def parse_args():
    parser = argparse.ArgumentParser(description='Print the whole config')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--save-path',
        default=None,
        help='also save the resolved config to this file (.py/.json/.yaml)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    print(f'Config:\n{cfg.pretty_text}')
    if args.save_path is not None:
        cfg.dump(args.save_path)
        print(f'Config saved to {args.save_path}')


if __name__ == '__main__':
    main()
