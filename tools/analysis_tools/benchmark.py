# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Inference speed of a config (and checkpoint) on its test data, with
warm-up, as mmdet's ``tools/analysis_tools/benchmark.py``.

Times ``model.test_step`` (preprocessing, frozen features, head,
post-processing) per batch of the config's test dataloader, skipping the
first ``--num-warmup`` batches, and reports images per second every
``--log-interval`` batches and overall; ``--repeat-num`` repeats the whole
measurement and reports the mean and standard deviation. The data loading
itself is not timed (mmdet's convention).

Usage::

    python tools/analysis_tools/benchmark.py CONFIG CHECKPOINT \\
        --max-iter 200 --num-warmup 5 --log-interval 50
    python tools/analysis_tools/benchmark.py configs/imdd/stage2_mvtec.py \\
        --synthetic 512 --batch-size 8 --dtype bf16   # no data, no weights

Without a checkpoint the model is built with random frozen weights
(``model.allow_random_frozen=True``, printed): a speed figure only.
``benchmarks/bench_inference.py`` compares variants (dtype, channels_last,
torch.compile, CUDA graphs) side by side on the full-size model.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from mmengine.config import DictAction

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='inference speed (img/s)')
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?', default=None)
    p.add_argument('--max-iter', type=int, default=200,
                   help='timed batches (after warm-up)')
    p.add_argument('--num-warmup', type=int, default=5)
    p.add_argument('--log-interval', type=int, default=50)
    p.add_argument('--repeat-num', type=int, default=1)
    p.add_argument('--batch-size', type=int, default=None,
                   help='override the test dataloader batch size')
    p.add_argument('--synthetic', type=int, default=None, metavar='SIZE',
                   help='time random SIZE x SIZE images instead of the '
                   "config's test data")
    p.add_argument('--vocabulary', default=None,
                   help='comma-separated class names (default: the test '
                   "dataset's classes; with --synthetic the checkpoint's, "
                   'else scratch,crack,stain)')
    p.add_argument('--dtype', choices=('fp32', 'fp16', 'bf16'),
                   default='fp32', help='autocast dtype (fp32 = off)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def build_model(cfg, checkpoint, device):
    from mmdet.registry import MODELS
    from mmengine.runner import load_checkpoint
    if checkpoint is None:
        cfg.model['allow_random_frozen'] = True
        print('no checkpoint: random weights (allow_random_frozen=True); '
              'the figure is a speed figure only')
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        ckpt = load_checkpoint(model, checkpoint, map_location='cpu')
        classes = ((ckpt or {}).get('meta', {}).get('dataset_meta')
                   or {}).get('classes')
        if classes:
            model.dataset_meta = dict(classes=tuple(classes))
    return model.to(device).eval()


def batches(cfg, args, model):
    """An endless iterator of raw batches (data loading not timed); sets the
    model's vocabulary as the runner would (the test dataset's classes)."""
    if args.vocabulary:
        model.set_vocabulary(args.vocabulary.split(','))
    if args.synthetic:
        from imdd_mm.testing import DEFAULT_VOCAB, stage2_batch
        if not (args.vocabulary or model.dataset_meta):
            model.set_vocabulary(list(DEFAULT_VOCAB))
        bs = args.batch_size or 1
        fixed = [stage2_batch(bs, args.synthetic, seed=i) for i in range(4)]
        while True:
            yield from fixed
    from mmengine.runner import Runner
    loader_cfg = cfg.test_dataloader.copy()
    if args.batch_size:
        loader_cfg['batch_size'] = args.batch_size
    loader = Runner.build_dataloader(loader_cfg)
    if len(loader) == 0:
        raise SystemExit(f'{args.config}: the test dataloader is empty')
    if not args.vocabulary:
        model.dataset_meta = dict(loader.dataset.metainfo)
    while True:
        yield from loader


def measure(model, data_iter, args, device) -> float:
    """Images per second over ``max_iter`` batches after warm-up."""
    from imdd_mm.utils.timing import sync
    dtype = dict(fp16=torch.float16, bf16=torch.bfloat16).get(args.dtype)
    images, elapsed = 0, 0.0
    for i in range(args.num_warmup + args.max_iter):
        data = next(data_iter)
        sync(device)
        t0 = time.perf_counter()
        with torch.no_grad(), torch.autocast(
                device.type, dtype=dtype or torch.float32,
                enabled=dtype is not None):
            model.test_step(data)
        sync(device)
        if i >= args.num_warmup:
            elapsed += time.perf_counter() - t0
            images += len(data['inputs'])
            done = i + 1 - args.num_warmup
            if done % args.log_interval == 0:
                print(f'Done batch [{done:<4d}/ {args.max_iter}], '
                      f'fps: {images / elapsed:.2f} img / s', flush=True)
    return images / elapsed


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import imdd_mm  # noqa: F401
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    device = torch.device(args.device)
    model = build_model(cfg, args.checkpoint, device)
    data_iter = batches(cfg, args, model)
    fps = []
    for run in range(args.repeat_num):
        fps.append(measure(model, data_iter, args, device))
        print(f'Overall fps: {fps[-1]:.2f} img / s (run {run + 1})')
    if args.repeat_num > 1:
        print(f'Mean overall fps: {statistics.fmean(fps):.2f} +- '
              f'{statistics.pstdev(fps):.2f} img / s over {len(fps)} runs')
    return fps


if __name__ == '__main__':
    main()
