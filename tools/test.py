# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Test (evaluate) a model: MMDetection 3.3's ``tools/test.py`` with imdd-mm
set up.

Examples:
    python tools/test.py configs/imdd/stage2_mvtec.py work_dirs/x/epoch_50.pth
    tools/dist_test.sh configs/imdd/stage2_visa.py CKPT 8 --out results.pkl
"""
import imdd_mm  # noqa: F401,I001  (must precede mmdet: compat patches)

import argparse
import os
import os.path as osp
import sys
import warnings
from copy import deepcopy

from mmdet.engine.hooks.utils import trigger_visualization_hook
from mmdet.evaluation import DumpDetResults
from mmdet.utils import setup_cache_size_limit_of_dynamo
from mmengine import ConfigDict
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from imdd_mm.utils import register_all_modules, setup_cpu_distributed
from imdd_mm.utils import run_record
from imdd_mm.utils.provenance import prepare_frozen_sources


def parse_args():
    parser = argparse.ArgumentParser(
        description='MMDet test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint',
        help='checkpoint file, or "none" for training-free models '
        '(e.g. the zero-shot anomaly baselines)')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--tta', action='store_true')
    parser.add_argument(
        '--report',
        type=str,
        help='also write a self-contained HTML report (metrics and '
        'predictions beside ground truth) to this path')
    # When using PyTorch version >= 2.0.0, the `torch.distributed.launch`
    # will pass the `--local-rank` parameter to `tools/train.py` instead
    # of `--local_rank`.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    # Reduce the number of repeated compilations and improve testing speed.
    setup_cache_size_limit_of_dynamo()

    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # '${category}' strings follow --cfg-options category=<name>
    run_record.resolve_run_vars(cfg)
    # provenance of the resolved config, before launch-only changes
    record_cfg = deepcopy(cfg)
    cfg.launcher = args.launcher

    # work_dir priority: CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    cfg.load_from = (None if args.checkpoint.lower() == 'none' else
                     args.checkpoint)
    # a Stage-2 checkpoint holds only the head: its frozen U-Net comes from
    # the Stage-1 checkpoint it recorded (model.override_frozen_sources=True
    # accepts a config naming another one)
    prepare_frozen_sources(cfg, cfg.load_from)

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    if args.tta:
        # imdd-mm's Mask2Former merges logits over flips (IMDDFlipTTAModel);
        # mmdet's DetTTAModel refuses instance masks
        imdd_tta = cfg.model.get('type', '').split('.')[-1] == \
            'IMDDMask2Former'
        if 'tta_model' not in cfg:
            warnings.warn('Cannot find ``tta_model`` in config, '
                          'we will set it as default.')
            cfg.tta_model = (
                dict(type='IMDDFlipTTAModel') if imdd_tta else dict(
                    type='DetTTAModel',
                    tta_cfg=dict(
                        nms=dict(type='nms', iou_threshold=0.5),
                        max_per_img=100)))
        if 'tta_pipeline' not in cfg:
            warnings.warn('Cannot find ``tta_pipeline`` in config, '
                          'we will set it as default.')
            test_data_cfg = cfg.test_dataloader.dataset
            while 'dataset' in test_data_cfg:
                test_data_cfg = test_data_cfg['dataset']
            cfg.tta_pipeline = deepcopy(test_data_cfg.pipeline)
            if imdd_tta:
                from imdd_mm.models.detectors import flip_tta_pipeline
                cfg.tta_pipeline = flip_tta_pipeline(cfg.tta_pipeline)
            else:
                flip_tta = dict(
                    type='TestTimeAug',
                    transforms=[
                        [
                            dict(type='RandomFlip', prob=1.),
                            dict(type='RandomFlip', prob=0.)
                        ],
                        [
                            dict(
                                type='PackDetInputs',
                                meta_keys=('img_id', 'img_path',
                                           'ori_shape', 'img_shape',
                                           'scale_factor', 'flip',
                                           'flip_direction'))
                        ],
                    ])
                cfg.tta_pipeline[-1] = flip_tta
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline

    if args.report:
        cfg.setdefault('custom_hooks', [])
        cfg.custom_hooks.append(
            dict(type='HTMLReportHook', out_file=args.report))

    setup_cpu_distributed(cfg)

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)

    # add `DumpResults` dummy metric
    if args.out is not None:
        assert args.out.endswith(('.pkl', '.pickle')), \
            'The dump file must be a pkl file.'
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))

    metrics = runner.test()
    write_result_record(runner, args, record_cfg, metrics)


def write_result_record(runner, args, cfg, metrics: dict) -> None:
    """``<work_dir>/<timestamp>/result.json``: the metrics with their
    provenance (:mod:`imdd_mm.utils.run_record`); rank 0 only."""
    from mmengine.dist import is_main_process
    if not is_main_process():
        return
    model = getattr(runner.model, 'module', runner.model)
    meta = None
    if (not callable(getattr(model, 'frozen_sources', None))
            and args.checkpoint.lower() != 'none'):
        from imdd_mm.utils import safe_torch_load
        meta = safe_torch_load(args.checkpoint,
                               map_location='cpu').get('meta')
    record = run_record.build_run_record(
        cfg, args.config, args.checkpoint, args.cfg_options, model=model,
        checkpoint_meta=meta, command=['python', 'tools/test.py'] +
        sys.argv[1:])
    record['test_flags'] = dict(tta=bool(args.tta), out=args.out)
    path = run_record.write_result(
        osp.join(runner.log_dir, run_record.RESULT_FILE), metrics or {},
        record)
    print(f'results with provenance: {path}', flush=True)


if __name__ == '__main__':
    main()
