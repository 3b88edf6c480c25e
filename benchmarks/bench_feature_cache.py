# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""A Stage-2 epoch with and without the feature cache, side by side.

Builds the Stage-2 model of ``--config`` once, with the config's
``model.feature_cache`` settings (dtype, flips, memory LRU) and a fresh
cache folder, makes ``--images`` generated surfaces with masks
(``imdd_mm.datasets.synthetic_surfaces``, random horizontal flips as in
training) and times full training iterations (``model.train_step``:
preprocessing, conditioning, features, head forward/backward, optimizer
step) in one process:

* ``recompute``: an epoch with the cache switched off (the frozen diffusion
  path runs for every batch);
* ``cache cold``: the first epoch with the cache (computes and stores; also
  fingerprints the frozen weights once);
* ``cache warm``: later epochs (reads; the frozen path does not run).

Both sides train the same model with the same optimizer. Epochs alternate
(recompute, cold, warm, recompute, warm, ...) so that a change of machine
load hits both sides; the reported ratio is median(recompute) /
median(warm). ``--timer cpu`` times process CPU time (robust on a shared
machine). The batches are copied before each epoch, outside the timer (a
real dataloader hands out fresh samples); the data pipeline itself (decode,
resize, flip: about 1.2 ms per 192 px Magnetic Tile image) is not timed.

``--frozen-unet sd15`` replaces the config's U-Net by the SD-1.5 U-Net
architecture (random weights: the cost does not depend on them; the
captioner's output widens to its 768-d cross-attention, the Stage-1
checkpoint is not loaded). ``--breakdown`` adds one untimed warm and one
untimed recompute epoch with per-stage CPU times.

Usage::

    python benchmarks/bench_feature_cache.py --timer cpu --breakdown
    python benchmarks/bench_feature_cache.py --frozen-unet sd15 --images 8
    python benchmarks/bench_feature_cache.py \
        --config configs/imdd/small/stage2_small.py --images 32 --repeats 3
"""
import argparse
import contextlib
import copy
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from mmengine.config import DictAction

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: Stable Diffusion 1.5's U-Net architecture (the diffusers
#: ``UNet2DConditionModel`` config of runwayml/stable-diffusion-v1-5), 860M
#: parameters.
SD15_UNET = dict(
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
    sample_size=64)


def frozen_unet_options(name):
    """``--cfg-options`` that give the config the named frozen U-Net."""
    if name is None:
        return {}
    if name != 'sd15':
        raise ValueError(f'unknown --frozen-unet {name!r}')
    opts = {f'model.backbone.unet.config.{k}': v
            for k, v in SD15_UNET.items()}
    opts['model.captioner.out_dim'] = SD15_UNET['cross_attention_dim']
    opts['model.stage1_checkpoint'] = None
    return opts


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default=str(
        REPO / 'configs/imdd/small/stage2_small.py'))
    p.add_argument('--images', type=int, default=16,
                   help='images per epoch')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--size', type=int, default=None,
                   help="image side (default: the config's image_size)")
    p.add_argument('--repeats', type=int, default=2,
                   help='timed recompute and warm epochs each')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--timer', choices=('wall', 'cpu'), default='wall')
    p.add_argument('--frozen-unet', choices=('sd15', ), default=None,
                   help='replace the U-Net by this architecture (random)')
    p.add_argument('--breakdown', action='store_true',
                   help='also print per-stage CPU times (untimed epochs)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   default={}, help='config overrides (e.g. a wider '
                   'frozen U-Net: model.backbone.unet.config.'
                   'block_out_channels="(64,128,256,256)")')
    p.add_argument('--cache-dir', default=None,
                   help='default: a temporary folder, removed afterwards')
    return p.parse_args(argv)


def make_batches(n, batch, size, classes, seed=0):
    """Generated surfaces (one defect each) as Stage-2 training batches."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    from imdd_mm.datasets.synthetic_surfaces import SURFACES, render_sample
    from imdd_mm.models.detectors import masks_to_boxes
    rng = np.random.default_rng(seed)
    batches = []
    for start in range(0, n, batch):
        inputs, samples = [], []
        for i in range(start, min(n, start + batch)):
            label = i % len(classes)
            img, mask = render_sample(SURFACES[i % len(SURFACES)],
                                      classes[label], size, seed + i)
            flip = bool(rng.random() < 0.5)
            if flip:
                img, mask = img[:, ::-1], mask[:, ::-1]
            m = (np.ascontiguousarray(mask)[None] > 0).astype(np.uint8)
            s = DetDataSample(metainfo=dict(
                img_shape=(size, size), ori_shape=(size, size),
                pad_shape=(size, size), scale_factor=(1.0, 1.0),
                flip=flip, flip_direction='horizontal' if flip else None,
                caption='', caption_nouns=[], is_normal=False))
            s.gt_instances = InstanceData(
                labels=torch.tensor([label]),
                masks=BitmapMasks(m, size, size),
                bboxes=masks_to_boxes(torch.from_numpy(m).bool()))
            inputs.append(torch.from_numpy(
                np.ascontiguousarray(img).transpose(2, 0, 1).copy()))
            samples.append(s)
        batches.append(dict(inputs=inputs, data_samples=samples))
    return batches


@contextlib.contextmanager
def cache_off(model):
    """The same model recomputing the frozen path (no cache)."""
    cache = model.feature_cache
    model.feature_cache = None
    try:
        yield
    finally:
        model.feature_cache = cache


@contextlib.contextmanager
def stage_timer(model, optim):
    """Accumulate process CPU seconds per training stage (wrapping the
    model's, head's and optimizer's methods while active)."""
    from imdd_mm.models.detectors import cached_features
    acc = defaultdict(float)
    head = model.panoptic_head
    wrapped = [
        (model.data_preprocessor, 'forward', 'data preprocessor'),
        (model, 'compute_condition', 'frozen path: captioner'),
        (model.backbone, 'forward', 'frozen path: VAE + U-Net'),
        (model, 'cached_backbone_features', 'cache: total'),
        (model, '_namespace', 'cache: frozen-weights check'),
        (cached_features, 'tensor_key', 'cache: content hash'),
        (head, 'forward_with_embeddings', 'head forward'),
        (head, 'loss_by_feat', 'losses: total'),
        (head, 'get_targets', 'losses: Hungarian matching'),
        (head, 'grounding_loss', 'losses: grounding'),
        (model, 'parse_losses', 'parse losses'),
        (optim, 'backward', 'backward'),
        (optim, 'step', 'optimizer step (+ grad clip)'),
        (optim, 'zero_grad', 'zero grad'),
        (model, 'train_step', 'train step'),
    ]
    if model.feature_cache is not None:
        wrapped.append((model.feature_cache, 'get', 'cache: read'))
    saved = []
    for obj, name, label in wrapped:
        fn = getattr(obj, name)
        own = name in vars(obj)
        saved.append((obj, name, own, fn))

        def timed(*a, _fn=fn, _label=label, **k):
            t0 = time.process_time()
            try:
                return _fn(*a, **k)
            finally:
                acc[_label] += time.process_time() - t0
        setattr(obj, name, timed)
    try:
        yield acc
    finally:
        for obj, name, own, fn in reversed(saved):
            if own:
                setattr(obj, name, fn)
            else:
                delattr(obj, name)


def breakdown_rows(acc, iters):
    """Exclusive per-iteration milliseconds of the stages in ``acc``."""
    ms = {k: 1000 * v / iters for k, v in acc.items()}
    rows = []
    cache_parts = ('cache: frozen-weights check', 'cache: content hash',
                   'cache: read')
    if 'cache: total' in ms:
        for k in cache_parts:
            rows.append((k, ms.get(k, 0.0)))
        rows.append(('cache: stack / flip / copy',
                     ms['cache: total'] - sum(ms.get(k, 0.0)
                                              for k in cache_parts)))
    for k in ('frozen path: captioner', 'frozen path: VAE + U-Net',
              'data preprocessor', 'head forward',
              'losses: Hungarian matching'):
        if k in ms:
            rows.append((k, ms[k]))
    rows.append(('losses: point-sampled mask/dice + cls',
                 ms['losses: total'] - ms['losses: Hungarian matching']))
    for k in ('losses: grounding', 'backward',
              'optimizer step (+ grad clip)', 'zero grad', 'parse losses'):
        rows.append((k, ms.get(k, 0.0)))
    rows.append(('other (train_step rest)',
                 ms['train step'] - sum(v for _, v in rows)))
    return rows, ms['train step']


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    import imdd_mm  # noqa: F401
    from imdd_mm.utils.timing import environment
    register_all_modules()
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(frozen_unet_options(args.frozen_unet))
    cfg.merge_from_dict(args.cfg_options)
    classes = ('scratch', 'crack', 'stain')
    size = args.size or cfg.get('image_size', (128, 128))[0]
    cache_dir = Path(args.cache_dir or tempfile.mkdtemp(prefix='imdd_fc_'))
    ckpt = cfg.model.get('stage1_checkpoint')
    if ckpt and not Path(ckpt).is_file():
        # timing does not depend on the weights' values
        print(f'{ckpt} not found: timing the seeded random U-Net instead')
        cfg.model.stage1_checkpoint = None
    load0 = os.getloadavg()
    env = environment(torch.device('cpu'))  # commit and date at the start

    mcfg = copy.deepcopy(cfg.model)
    mcfg.vocabulary = list(classes)
    fc_cfg = dict(mcfg.get('feature_cache') or {})
    fc_cfg['cache_dir'] = str(cache_dir)
    mcfg.feature_cache = fc_cfg
    torch.manual_seed(0)
    model = MODELS.build(mcfg)
    model.init_weights()
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    batches = make_batches(args.images, args.batch, size, classes)
    clock = time.process_time if args.timer == 'cpu' else time.perf_counter

    def epoch():
        data = [copy.deepcopy(d) for d in batches]  # fresh, untimed
        t0 = clock()
        for d in data:
            model.train_step(d, optim)
        return clock() - t0

    def recompute_epoch():
        with cache_off(model):
            return epoch()

    times = dict(recompute=[], cold=[], warm=[])
    stages = {}
    try:
        recompute_epoch()  # warm-up (allocator, text embeddings)
        times['recompute'].append(recompute_epoch())
        times['cold'].append(epoch())
        for _ in range(args.repeats):
            times['warm'].append(epoch())
            if len(times['recompute']) < args.repeats:
                times['recompute'].append(recompute_epoch())
        if args.breakdown:
            with stage_timer(model, optim) as acc:
                epoch()
            stages['cache warm'] = breakdown_rows(acc, len(batches))
            with cache_off(model), stage_timer(model, optim) as acc:
                epoch()
            stages['recompute'] = breakdown_rows(acc, len(batches))
        size_mb = model.feature_cache.size_bytes() / 2**20
    finally:
        if args.cache_dir is None:
            shutil.rmtree(cache_dir, ignore_errors=True)
    rec = statistics.median(times['recompute'])
    warm = statistics.median(times['warm'])
    frozen = sum(p.numel() for _, m in model._frozen_named_modules()
                 for p in m.parameters())
    trainable = sum(p.numel() for p in model.parameters()
                    if p.requires_grad)
    print('command: python benchmarks/bench_feature_cache.py '
          + ' '.join(shlex.quote(a) for a in (argv or sys.argv[1:])))
    print(f'config {args.config}'
          + (f' with the {args.frozen_unet} U-Net (random)'
             if args.frozen_unet else '')
          + f': {args.images} images of {size}px, batch {args.batch}, '
          f'{torch.get_num_threads()} thread(s), {args.timer} time')
    print(f'commit {env["commit"]}, {env["date"]}, {os.cpu_count()} CPUs, '
          f'load average {load0[0]:.1f} at start, '
          f'{os.getloadavg()[0]:.1f} at end')
    print(f'frozen path params: {frozen / 1e6:.2f}M; trainable: '
          f'{trainable / 1e6:.2f}M; cache '
          f'{ {k: v for k, v in fc_cfg.items() if k != "cache_dir"} }')
    print(f'{"epoch":<12}{"seconds":>10}')
    print(f'{"recompute":<12}{rec:>10.2f}   (median of '
          f'{len(times["recompute"])})')
    print(f'{"cache cold":<12}{times["cold"][0]:>10.2f}')
    print(f'{"cache warm":<12}{warm:>10.2f}   (median of '
          f'{len(times["warm"])})')
    print(f'speed-up recompute / warm: {rec / warm:.2f}x; cache size '
          f'{size_mb:.1f} MiB')
    for side, (rows, total) in stages.items():
        print(f'breakdown, {side} (CPU ms per iteration, one untimed '
              f'epoch): {total:.1f}')
        for name, ms in rows:
            print(f'  {name:<40}{ms:>8.2f}  {100 * ms / total:5.1f} %')
    return dict(recompute=rec, warm=warm, cold=times['cold'][0],
                ratio=rec / warm, stages=stages)


if __name__ == '__main__':
    main()
