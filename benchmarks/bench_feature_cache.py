# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""A Stage-2 epoch with and without the feature cache, side by side.

Builds the Stage-2 model of ``--config`` twice with the same weights (one
recomputing the frozen diffusion path, one with
``feature_cache=dict(cache_dir=...)``), makes ``--images`` generated
surfaces with masks (``imdd_mm.datasets.synthetic_surfaces``, random
horizontal flips as in training) and times full training iterations
(``model.train_step``: preprocessing, conditioning, features, head
forward/backward, optimizer step) in one process:

* ``recompute``: an epoch without the cache;
* ``cache cold``: the first epoch with the cache (computes and stores);
* ``cache warm``: later epochs (reads; the frozen path does not run).

Epochs alternate (recompute, cold, warm, recompute, warm, ...) so that a
change of machine load hits both sides; the reported ratio is
median(recompute) / median(warm). ``--timer cpu`` times process CPU time
(robust on a shared machine).

Usage::

    python benchmarks/bench_feature_cache.py
    python benchmarks/bench_feature_cache.py \
        --config configs/imdd/small/stage2_small.py --images 32 --repeats 3
"""
import argparse
import copy
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from mmengine.config import DictAction

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default=str(
        REPO / 'configs/imdd/small/stage2_small.py'))
    p.add_argument('--images', type=int, default=16,
                   help='images per epoch')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--repeats', type=int, default=2,
                   help='timed recompute and warm epochs each')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--timer', choices=('wall', 'cpu'), default='wall')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   default={}, help='config overrides (e.g. a wider '
                   'frozen U-Net: model.backbone.unet.config.'
                   'block_out_channels="(64,128,256,256)")')
    p.add_argument('--cache-dir', default=None,
                   help='default: a temporary folder, removed afterwards')
    return p.parse_args()


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


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    import imdd_mm  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    register_all_modules()
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    classes = ('scratch', 'crack', 'stain')
    size = cfg.get('image_size', (128, 128))[0]
    cache_dir = Path(args.cache_dir or tempfile.mkdtemp(prefix='imdd_fc_'))
    ckpt = cfg.model.get('stage1_checkpoint')
    if ckpt and not Path(ckpt).is_file():
        # timing does not depend on the weights' values
        print(f'{ckpt} not found: timing the seeded random U-Net instead')
        cfg.model.stage1_checkpoint = None

    def build(cache):
        mcfg = copy.deepcopy(cfg.model)
        mcfg.vocabulary = list(classes)
        mcfg.feature_cache = (dict(cache_dir=str(cache_dir))
                              if cache else None)
        torch.manual_seed(0)
        model = MODELS.build(mcfg)
        model.init_weights()
        model.train()
        return model, build_optim_wrapper(model, cfg.optim_wrapper)

    plain, plain_opt = build(False)
    cached, cached_opt = build(True)
    cached.load_state_dict(plain.state_dict())
    batches = make_batches(args.images, args.batch, size, classes)
    clock = time.process_time if args.timer == 'cpu' else time.perf_counter

    def epoch(model, opt):
        t0 = clock()
        for data in batches:
            model.train_step(copy.deepcopy(data), opt)
        return clock() - t0

    times = dict(recompute=[], cold=[], warm=[])
    try:
        epoch(plain, plain_opt)  # warm-up (allocator, text embeddings)
        times['recompute'].append(epoch(plain, plain_opt))
        times['cold'].append(epoch(cached, cached_opt))
        for _ in range(args.repeats):
            times['warm'].append(epoch(cached, cached_opt))
            if len(times['recompute']) < args.repeats:
                times['recompute'].append(epoch(plain, plain_opt))
        size_mb = cached.feature_cache.size_bytes() / 2**20
    finally:
        if args.cache_dir is None:
            shutil.rmtree(cache_dir, ignore_errors=True)
    rec = statistics.median(times['recompute'])
    warm = statistics.median(times['warm'])
    print(f'config {args.config}: {args.images} images of {size}px, batch '
          f'{args.batch}, {torch.get_num_threads()} thread(s), '
          f'{args.timer} time')
    print(f'frozen path params: '
          f'{sum(p.numel() for _, m in cached._frozen_named_modules() for p in m.parameters()) / 1e6:.2f}M; '  # noqa: E501
          f'trainable: {sum(p.numel() for p in cached.parameters() if p.requires_grad) / 1e6:.2f}M')  # noqa: E501
    print(f'{"epoch":<12}{"seconds":>10}')
    print(f'{"recompute":<12}{rec:>10.2f}   (median of '
          f'{len(times["recompute"])})')
    print(f'{"cache cold":<12}{times["cold"][0]:>10.2f}')
    print(f'{"cache warm":<12}{warm:>10.2f}   (median of '
          f'{len(times["warm"])})')
    print(f'speed-up recompute / warm: {rec / warm:.2f}x; cache size '
          f'{size_mb:.1f} MiB')


if __name__ == '__main__':
    main()
