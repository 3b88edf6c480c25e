# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Stage-2 inference speed and memory, end to end, variants side by side.

Times ``model.test_step`` (data preprocessing on the device, frozen VAE +
U-Net features at t = 50, implicit captioner, open-vocabulary Mask2Former
head, post-processing to masks / boxes / score maps) on synthetic 512 px
batches of the full-size model (SD-1.5-shaped U-Net; random frozen weights,
asked for with ``allow_random_frozen=True``: speed does not depend on the
weights). For each batch size and variant it reports img/s, ms per image,
peak device memory, the ratio to the paper's 2.86 img/s (0.35 s per image
on an A100, Table 10) and, as the accuracy side of the trade-off, the mean
absolute difference of the defect score maps and the image-label agreement
against the fp32 run on the same batch.

Variants (each adds to the previous where it says so):

* ``fp32``: no autocast.
* ``bf16``: ``torch.autocast`` bfloat16 (SDPA attention, diffusers'
  default processor, in both).
* ``bf16-cl``: bf16 + channels_last weights.
* ``bf16-cl-compile``: bf16-cl + ``torch.compile`` of the frozen U-Net and
  VAE (CUDA only).
* ``bf16-cl-graphs``: bf16-cl + ``torch.compile(mode='reduce-overhead')``,
  which replays CUDA graphs (CUDA only).

Usage::

    python benchmarks/bench_inference.py --out work_dirs/gpu_check
    python benchmarks/bench_inference.py --batches 1,8,32 --variants fp32,bf16
    python benchmarks/bench_inference.py --dry-run   # tiny model, CPU

``--dry-run`` runs the tiny config at 64 px on the CPU (batches 1 and 2,
fp32 and bf16), so the script is known to work before GPU time is spent.
"""
import argparse
import copy
import shlex
import sys

import torch

from imdd_mm.utils.timing import (environment, markdown_table,
                                  peak_memory_gib, reset_peak_memory,
                                  time_median, write_results)

PAPER_IMG_PER_S = 1 / 0.35  # Table 10, A100
VARIANTS = ('fp32', 'bf16', 'bf16-cl', 'bf16-cl-compile', 'bf16-cl-graphs')
CUDA_ONLY = ('bf16-cl-compile', 'bf16-cl-graphs')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default=None,
                   help='Stage-2 config (default: configs/imdd/'
                   'stage2_mvtec.py; tiny config with --dry-run)')
    p.add_argument('--size', type=int, default=None,
                   help='image side in px (default 512; 64 with --dry-run)')
    p.add_argument('--batches', default=None,
                   help='comma-separated batch sizes (default 1,8,32)')
    p.add_argument('--variants', default=None,
                   help=f'comma-separated, from {",".join(VARIANTS)}')
    p.add_argument('--repeats', type=int, default=None)
    p.add_argument('--warmup', type=int, default=None)
    p.add_argument('--device', default=None)
    p.add_argument('--out', default=None,
                   help='write inference.json / inference.md here')
    p.add_argument('--dry-run', action='store_true',
                   help='tiny model on the CPU: checks the script only')
    args = p.parse_args(argv)
    from imdd_mm.testing import FULL_STAGE2_CFG, TINY_STAGE2_CFG
    dry = args.dry_run
    args.config = args.config or str(TINY_STAGE2_CFG if dry else
                                     FULL_STAGE2_CFG)
    args.size = args.size or (64 if dry else 512)
    args.batches = [int(b) for b in (args.batches or (
        '1,2' if dry else '1,8,32')).split(',')]
    args.variants = (args.variants or ('fp32,bf16' if dry else
                                       ','.join(VARIANTS))).split(',')
    bad = sorted(set(args.variants) - set(VARIANTS))
    if bad:
        p.error(f'unknown variant(s) {bad}; choose from {VARIANTS}')
    args.repeats = args.repeats or (1 if dry else 10)
    args.warmup = args.warmup or (1 if dry else 3)
    args.device = args.device or ('cpu' if dry or not torch.cuda.is_available()
                                  else 'cuda')
    return args


def _apply_variant(model, variant, originals):
    """Put ``model`` in ``variant``'s state (in place); return the autocast
    dtype. Variants are applied in :data:`VARIANTS` order, so channels_last
    stays on once set; compiled variants wrap the original frozen nets."""
    bb = model.backbone
    if '-cl' in variant:
        model.to(memory_format=torch.channels_last)
    for name, net in originals.items():
        if variant == 'bf16-cl-compile':
            net = torch.compile(net, mode='max-autotune-no-cudagraphs')
        elif variant == 'bf16-cl-graphs':
            net = torch.compile(net, mode='reduce-overhead')
        bb.add_frozen_module(name, net)
    return None if variant == 'fp32' else torch.bfloat16


def _step(model, batch, dtype, device):
    with torch.no_grad(), torch.autocast(
            device.type, dtype=dtype or torch.float32,
            enabled=dtype is not None):
        return model.test_step(copy.copy(batch))


def _summary(out):
    """(score maps on the CPU, image labels) of one prediction batch."""
    return ([o.pred_score_map.data.float().cpu() for o in out],
            [o.pred_image_label for o in out])


def _agreement(ref, out):
    ref_maps, ref_labels = ref
    maps, labels = _summary(out)
    diff = torch.stack([(a - b).abs().mean()
                        for a, b in zip(ref_maps, maps)]).mean()
    same = sum(int(a == b) for a, b in zip(ref_labels, labels)) / len(maps)
    return float(diff), same


def run(args) -> list:
    from imdd_mm.testing import build_from_config, stage2_batch
    device = torch.device(args.device)
    model = build_from_config(args.config, device=device)
    model.eval()
    batches = {bs: stage2_batch(bs, args.size, seed=bs) for bs in args.batches}
    refs = {}
    for bs, batch in batches.items():  # fp32 reference predictions
        try:
            refs[bs] = _summary(_step(model, batch, None, device))
        except torch.OutOfMemoryError:
            refs[bs] = None
    originals = {n: getattr(model.backbone, n) for n in ('unet', 'vae')}
    records = []
    for variant in sorted(args.variants, key=VARIANTS.index):
        if variant in CUDA_ONLY and device.type != 'cuda':
            print(f'skip {variant}: CUDA only', file=sys.stderr)
            continue
        dtype = _apply_variant(model, variant, originals)
        for bs, batch in batches.items():
            rec = dict(variant=variant, batch=bs, size=args.size)
            try:
                out = _step(model, batch, dtype, device)  # also compiles
                if refs[bs] is not None:
                    rec['score_mad_vs_fp32'], rec['label_agree_vs_fp32'] = \
                        _agreement(refs[bs], out)
                del out
                reset_peak_memory(device)
                sec = time_median(lambda: _step(model, batch, dtype, device),
                                  device, args.repeats, args.warmup)
            except torch.OutOfMemoryError:
                rec['status'] = 'OOM'
                records.append(rec)
                continue
            rec.update(
                status='ok',
                img_per_s=bs / sec,
                ms_per_img=1e3 * sec / bs,
                peak_gib=peak_memory_gib(device),
                x_paper=bs / sec / PAPER_IMG_PER_S)
            records.append(rec)
            print(f'{variant:16s} batch {bs:3d}: {rec["img_per_s"]:8.2f} '
                  f'img/s', file=sys.stderr, flush=True)
    return records


def main(argv=None):
    args = parse_args(argv)
    records = run(args)
    env = environment(torch.device(args.device))
    env['config'] = args.config
    cols = ['variant', 'batch', 'size', 'status', 'img_per_s', 'ms_per_img',
            'peak_gib', 'x_paper', 'score_mad_vs_fp32', 'label_agree_vs_fp32']
    command = 'python benchmarks/bench_inference.py ' + ' '.join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    write_results(args.out, 'inference', records, env, command,
                  markdown_table(records, cols))
    return records


if __name__ == '__main__':
    main()
