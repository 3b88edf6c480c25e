# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""FLOPs and parameters of a Stage-2 model, part by part (as mmdet's
``tools/analysis_tools/get_flops.py``).

Parts: the frozen VAE encoder, the frozen U-Net (only the blocks the feature
taps need), the implicit captioner (frozen CLIP image tower + MLP), the
trainable open-vocabulary Mask2Former head, and the text encoder (run once
per vocabulary, not per image: shown apart and not in the per-image total).

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode``: 2 FLOPs
per multiply-add of convolutions, matrix products and attention; element-wise
operations, normalisation and interpolation are not counted (about 1-3 % at
these sizes). mmdet's tool reports multiply-adds as "FLOPs"; ours are twice
that convention. Weights do not change FLOPs: frozen parts may be random
(``model.allow_random_frozen=True`` is set for this count).

Usage::

    python tools/analysis_tools/get_flops.py configs/imdd/stage2_mvtec.py \\
        --shape 512
    python tools/analysis_tools/get_flops.py \\
        configs/imdd/tiny/stage2_tiny.py --shape 128 256 --out flops.json
"""
import argparse
import json
import sys
from pathlib import Path

import torch
from mmengine.config import DictAction
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Stage-2 FLOPs and parameters')
    p.add_argument('config')
    p.add_argument('--shape', type=int, nargs='+', default=[512],
                   help='input image size: H [W]')
    p.add_argument('--vocabulary', default='scratch,crack,stain',
                   help='comma-separated class names (text encoder input)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='key=value overrides, as given to tools/test.py')
    p.add_argument('--out', help='also write the numbers as JSON')
    return p.parse_args(argv)


def _flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn()
    return int(counter.get_total_flops())


def _params(*modules) -> int:
    seen, total = set(), 0
    for m in modules:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
    return total


def count(model, height: int, width: int) -> list:
    """Rows ``dict(part, params, flops, per_image)`` for one image."""
    from imdd_mm.testing import frozen_modules, stage2_batch
    model.eval()
    batch = stage2_batch(1, height)
    if height != width:  # stage2_batch draws square images
        batch['inputs'] = [torch.zeros(3, height, width, dtype=torch.uint8)]
        for s in batch['data_samples']:
            s.set_metainfo(dict(img_shape=(height, width),
                                ori_shape=(height, width),
                                pad_shape=(height, width)))
    data = model.data_preprocessor(batch, False)
    x, samples = data['inputs'], data['data_samples']
    frozen = frozen_modules(model)
    bb, head = model.backbone, model.panoptic_head
    with torch.no_grad():
        model.predict(x, samples)  # warm caches (vocabulary embeddings)
        cond = model.compute_condition(x, samples)
        feats = model.extract_feat(x, samples)
    text = [m for n, m in frozen.items() if n.startswith('panoptic_head.')]
    captioner = [model.captioner] + [
        m for n, m in frozen.items() if n.startswith('captioner.')
    ]
    vocab = list(model.dataset_meta['classes']) if model.dataset_meta \
        else None
    rows = [
        dict(part='VAE encoder (frozen)',
             params=_params(bb.vae.encoder) + _params(
                 *([bb.vae.quant_conv] if bb.vae.quant_conv is not None
                   else [])),
             flops=_flops(lambda: bb.encode_latents(x))),
        dict(part='U-Net taps (frozen)', params=_params(bb.unet),
             flops=_flops(lambda: bb(x, cond)) -
             _flops(lambda: bb.encode_latents(x))),
        dict(part='implicit captioner', params=_params(*captioner),
             flops=_flops(lambda: model.compute_condition(x, samples))),
        dict(part='OV Mask2Former head', params=_params(head),
             flops=_flops(lambda: head.forward(feats, samples))),
    ]
    for r in rows:
        r['per_image'] = True
    if text:
        enc = text[0]
        names = vocab or ['scratch', 'crack', 'stain']
        rows.append(
            dict(part=f'text encoder (once per vocabulary of {len(names)})',
                 params=_params(*text),
                 flops=_flops(lambda: enc.encode(names)),
                 per_image=False))
    rows.append(
        dict(part='total per image',
             params=sum(r['params'] for r in rows),
             flops=sum(r['flops'] for r in rows if r['per_image']),
             per_image=True))
    return rows


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    from imdd_mm.testing import build_from_config
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    h = args.shape[0]
    w = args.shape[1] if len(args.shape) > 1 else h
    model = build_from_config(cfg, vocabulary=args.vocabulary.split(','))
    model.dataset_meta = dict(classes=tuple(args.vocabulary.split(',')))
    rows = count(model, h, w)
    print(f'{args.config}, input (1, 3, {h}, {w})')
    print(f'{"part":48s} {"params (M)":>11s} {"GFLOPs":>10s}')
    for r in rows:
        print(f'{r["part"]:48s} {r["params"] / 1e6:11.2f} '
              f'{r["flops"] / 1e9:10.2f}')
    print('FLOPs = 2 x multiply-adds (torch FlopCounterMode); '
          'mmdet counts multiply-adds.')
    if args.out:
        Path(args.out).write_text(
            json.dumps(dict(config=args.config, shape=[h, w], rows=rows),
                       indent=2) + '\n')
    return rows


if __name__ == '__main__':
    main()
