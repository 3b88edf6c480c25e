# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Training throughput per GPU: Stage 1 (img/s) and Stage 2 (iter/s).

Stage 1 (Table 8, §11.3): ``IMDDDiffusionPretrainer.train_step`` of the
SD-1.5-shaped U-Net at 512 px, 32 images per GPU, under fp16 and bf16 AMP
(mmengine's ``AmpOptimWrapper``, AdamW), with gradient checkpointing on and
off. The paper trains 124 M samples in 72 h on 8 H100s: about 60 img/s per
GPU, the figure each row is compared with (``x_paper``).

Stage 2 (Table 9): ``IMDDMask2Former.train_step`` of the full-size model at
512 px, 2 images per GPU, fp16 AMP, clip 0.01: iterations per second.

Frozen networks are random (``allow_random_frozen=True``); the speed does
not depend on their weights. Synthetic batches are built once and reused,
so the data pipeline is not timed (it runs in parallel workers in a real
run).

Usage::

    python benchmarks/bench_training.py --out work_dirs/gpu_check
    python benchmarks/bench_training.py --stages stage1 --batch1 16
    python benchmarks/bench_training.py --dry-run    # tiny models, CPU
"""
import argparse
import shlex
import sys

import torch

from imdd_mm.utils.timing import (environment, markdown_table,
                                  peak_memory_gib, reset_peak_memory,
                                  time_median, write_results)

PAPER_STAGE1_IMG_PER_S = 124e6 / (72 * 3600) / 8  # §11.3: ~59.8 per GPU


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--stages', default='stage1,stage2')
    p.add_argument('--size', type=int, default=None,
                   help='image side (default 512; 64 with --dry-run)')
    p.add_argument('--batch1', type=int, default=None,
                   help='Stage-1 images per GPU (default 32; 2 dry)')
    p.add_argument('--batch2', type=int, default=2,
                   help='Stage-2 images per GPU (Table 9: 2)')
    p.add_argument('--dtypes', default='float16,bfloat16')
    p.add_argument('--checkpointing', default='off,on',
                   help='Stage-1 gradient checkpointing settings to time')
    p.add_argument('--repeats', type=int, default=None)
    p.add_argument('--warmup', type=int, default=None)
    p.add_argument('--device', default=None)
    p.add_argument('--out', default=None,
                   help='write training.json / training.md here')
    p.add_argument('--dry-run', action='store_true',
                   help='tiny models on the CPU: checks the script only')
    args = p.parse_args(argv)
    dry = args.dry_run
    args.size = args.size or (64 if dry else 512)
    args.batch1 = args.batch1 or (2 if dry else 32)
    args.repeats = args.repeats or (1 if dry else 5)
    args.warmup = args.warmup or (1 if dry else 2)
    args.device = args.device or ('cpu' if dry or not torch.cuda.is_available()
                                  else 'cuda')
    args.stages = args.stages.split(',')
    # mmengine's AmpOptimWrapper needs a GPU: the CPU times fp32 once
    args.dtypes = args.dtypes.split(',') if args.device != 'cpu' else [
        'float32']
    args.checkpointing = [c == 'on' for c in args.checkpointing.split(',')]
    return args


def _optim_wrapper(model, config, dtype, device):
    """The config's optimizer under AMP (``AmpOptimWrapper``); plain fp32
    ``OptimWrapper`` on the CPU, where mmengine has no AMP wrapper."""
    import copy

    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    cfg = copy.deepcopy(Config.fromfile(str(config)).optim_wrapper)
    if device.type == 'cuda':
        cfg.update(type='AmpOptimWrapper', dtype=dtype)
    else:
        cfg['type'] = 'OptimWrapper'
        cfg.pop('dtype', None)
        cfg.pop('loss_scale', None)
    return build_optim_wrapper(model, cfg)


def _time_steps(model, batch, ow, device, args):
    model.train()
    reset_peak_memory(device)
    sec = time_median(lambda: model.train_step(batch, ow), device,
                      args.repeats, args.warmup)
    return sec, peak_memory_gib(device)


def bench_stage1(args, device, dry):
    from imdd_mm.testing import (FULL_STAGE1_CFG, TINY_STAGE1_CFG,
                                 build_from_config, stage1_batch)
    config = TINY_STAGE1_CFG if dry else FULL_STAGE1_CFG
    batch = stage1_batch(args.batch1, args.size)
    records = []
    for ckpt in args.checkpointing:
        model = build_from_config(config, device=device,
                                  gradient_checkpointing=ckpt)
        for dtype in args.dtypes:
            rec = dict(stage='stage1', dtype=dtype, batch=args.batch1,
                       size=args.size, grad_ckpt=ckpt)
            ow = _optim_wrapper(model, config, dtype, device)
            try:
                sec, peak = _time_steps(model, batch, ow, device, args)
                rec.update(status='ok', img_per_s=args.batch1 / sec,
                           s_per_iter=sec, peak_gib=peak,
                           x_paper=args.batch1 / sec /
                           PAPER_STAGE1_IMG_PER_S)
            except torch.OutOfMemoryError:
                rec['status'] = 'OOM'
            records.append(rec)
            del ow
            print(rec, file=sys.stderr, flush=True)
        del model
    return records


def bench_stage2(args, device, dry):
    from imdd_mm.testing import (FULL_STAGE2_CFG, TINY_STAGE2_CFG,
                                 build_from_config, stage2_batch)
    config = TINY_STAGE2_CFG if dry else FULL_STAGE2_CFG
    model = build_from_config(config, device=device)
    batch = stage2_batch(args.batch2, args.size)
    dtype = 'float16' if device.type == 'cuda' else 'float32'  # Table 9
    rec = dict(stage='stage2', dtype=dtype, batch=args.batch2, size=args.size,
               grad_ckpt=False)
    ow = _optim_wrapper(model, config, dtype, device)
    try:
        sec, peak = _time_steps(model, batch, ow, device, args)
        rec.update(status='ok', iter_per_s=1 / sec, s_per_iter=sec,
                   img_per_s=args.batch2 / sec, peak_gib=peak)
    except torch.OutOfMemoryError:
        rec['status'] = 'OOM'
    print(rec, file=sys.stderr, flush=True)
    return [rec]


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    records = []
    if 'stage1' in args.stages:
        records += bench_stage1(args, device, args.dry_run)
    if 'stage2' in args.stages:
        records += bench_stage2(args, device, args.dry_run)
    cols = ['stage', 'dtype', 'batch', 'size', 'grad_ckpt', 'status',
            'img_per_s', 'iter_per_s', 's_per_iter', 'peak_gib', 'x_paper']
    command = 'python benchmarks/bench_training.py ' + ' '.join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    write_results(args.out, 'training', records, environment(device),
                  command, markdown_table(records, cols))
    return records


if __name__ == '__main__':
    main()
