# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Draw a config's training samples (after its pipeline) with their ground
truth, as MMDetection's ``tools/analysis_tools/browse_dataset.py`` does, and
print each sample's caption.

Example:
    python tools/analysis_tools/browse_dataset.py \
        configs/imdd/tiny/stage2_tiny.py --output-dir work_dirs/browse \
        --not-show --max-samples 20
"""
import imdd_mm  # noqa: F401,I001  (must precede mmdet: compat patches)

import argparse
import os.path as osp

import numpy as np
from mmdet.models.utils import mask2ndarray
from mmdet.registry import DATASETS, VISUALIZERS
from mmdet.structures.bbox import BaseBoxes
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar

from imdd_mm.utils import register_all_modules, run_record


def parse_args():
    parser = argparse.ArgumentParser(description='Browse a dataset')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--output-dir',
        default=None,
        type=str,
        help='If there is no display interface, you can save it')
    parser.add_argument(
        '--split',
        default='train',
        choices=['train', 'val', 'test'],
        help='which dataloader of the config to browse')
    parser.add_argument('--not-show', default=False, action='store_true')
    parser.add_argument(
        '--show-interval',
        type=float,
        default=2,
        help='the interval of show (s)')
    parser.add_argument(
        '--max-samples',
        type=int,
        default=None,
        help='stop after this many samples')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    return parser.parse_args()


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # '${category}' strings follow --cfg-options category=<name>
    run_record.resolve_run_vars(cfg)
    init_default_scope(cfg.get('default_scope', 'mmdet'))

    dataset = DATASETS.build(cfg[f'{args.split}_dataloader'].dataset)
    visualizer = VISUALIZERS.build(cfg.visualizer)
    visualizer.dataset_meta = dataset.metainfo

    total = len(dataset) if args.max_samples is None else min(
        len(dataset), args.max_samples)
    progress_bar = ProgressBar(total)
    for idx in range(total):
        item = dataset[idx]
        img = item['inputs'].permute(1, 2, 0).numpy()
        data_sample = item['data_samples'].numpy()
        gt_instances = data_sample.gt_instances
        img_path = osp.basename(item['data_samples'].img_path)
        out_file = osp.join(
            args.output_dir,
            osp.basename(img_path)) if args.output_dir is not None else None

        img = img[..., [2, 1, 0]]  # bgr to rgb
        gt_bboxes = gt_instances.get('bboxes', None)
        if gt_bboxes is not None and isinstance(gt_bboxes, BaseBoxes):
            gt_instances.bboxes = gt_bboxes.tensor
        gt_masks = gt_instances.get('masks', None)
        if gt_masks is not None:
            masks = mask2ndarray(gt_masks)
            gt_instances.masks = masks.astype(bool)
        data_sample.gt_instances = gt_instances

        caption = data_sample.metainfo.get('caption')
        if caption:
            print(f'\n{img_path}: {caption}')
        visualizer.add_datasample(
            osp.basename(img_path),
            np.ascontiguousarray(img),
            data_sample,
            draw_pred=False,
            show=not args.not_show,
            wait_time=args.show_interval,
            out_file=out_file)
        progress_bar.update()


if __name__ == '__main__':
    main()
