# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Encoder-only feature taps vs. a full U-Net forward, side by side.

``IMDDDiffusionBackbone`` runs only the U-Net parts its taps need (time
embedding, conv_in, down blocks, mid block for the default s8..s64 maps) and
skips the up path. This script times, in one process and on the same inputs:

* ``taps``: ``backbone(img, cond)`` (VAE encode + noise + partial U-Net);
* ``full``: the same VAE encode + noise, then diffusers' full
  ``unet(z_t, t, cond)`` forward with hooks catching the same four maps
  (what a hook-based extractor costs);

checks that both give the same features and prints the time ratio (also
for the U-Net part alone, subtracting the shared VAE-encode time).

Usage::

    python benchmarks/bench_backbone.py --size 256 --batch 2 --config sd15
    python benchmarks/bench_backbone.py --size 128 --config tiny --device cpu

``--config sd15`` uses the paper's SD-1.5 shapes (random weights; ~3.5 GB in
fp32), ``tiny`` the test-size nets.
"""
import argparse
import time

import torch
from imdd_mm.utils.timing import time_median


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', choices=('sd15', 'tiny'), default='sd15')
    p.add_argument('--size', type=int, default=256, help='image side (px)')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--dtype', choices=('fp32', 'fp16', 'bf16'),
                   default='fp32', help='autocast dtype (fp32 = off)')
    p.add_argument('--threads', type=int, default=0,
                   help='torch CPU threads (0 = leave as is)')
    p.add_argument('--timer', choices=('wall', 'cpu'), default='wall',
                   help="'cpu' = process CPU time (robust on shared cores)")
    return p.parse_args()


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import imdd_mm  # noqa: F401  (compat patches first)
    from imdd_mm.models.backbones import (SD15_UNET_CONFIG, SD15_VAE_CONFIG,
                                          TINY_UNET_CONFIG, TINY_VAE_CONFIG,
                                          IMDDDiffusionBackbone)
    device = torch.device(args.device)
    if args.config == 'sd15':
        unet, vae, dim = SD15_UNET_CONFIG, SD15_VAE_CONFIG, 768
    else:
        unet, vae, dim = TINY_UNET_CONFIG, TINY_VAE_CONFIG, 384
    bb = IMDDDiffusionBackbone(unet=dict(config=unet),
                               vae=dict(config=vae)).to(device)
    gen = torch.Generator().manual_seed(0)
    img = (torch.rand(args.batch, 3, args.size, args.size, generator=gen) *
           2 - 1).to(device)
    cond = torch.randn(args.batch, 1, dim, generator=gen).to(device)
    u = bb.unet
    caught = {}
    hooks = [
        u.down_blocks[0].downsamplers[0].register_forward_pre_hook(
            lambda m, a: caught.__setitem__('s8', a[0])),
        u.down_blocks[1].downsamplers[0].register_forward_pre_hook(
            lambda m, a: caught.__setitem__('s16', a[0])),
        u.down_blocks[2].downsamplers[0].register_forward_pre_hook(
            lambda m, a: caught.__setitem__('s32', a[0])),
        u.mid_block.register_forward_hook(
            lambda m, a, o: caught.__setitem__('s64', o)),
    ]
    use_amp = args.dtype != 'fp32'
    amp_dtype = dict(fp16=torch.float16, bf16=torch.bfloat16,
                     fp32=torch.float32)[args.dtype]

    def taps():
        with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype,
                                             enabled=use_amp):
            return bb(img, cond)

    def full():
        with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype,
                                             enabled=use_amp):
            z0, _ = bb.encode_latents(img)
            u(bb.add_noise(z0), bb.timestep, cond)
            return dict(caught)

    def vae_only():
        with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype,
                                             enabled=use_amp):
            z0, _ = bb.encode_latents(img)
            return bb.add_noise(z0)

    a, b = taps(), full()
    for k in a:
        torch.testing.assert_close(a[k].float(), b[k].float(), rtol=2e-2,
                                   atol=2e-2)
    clock = time.process_time if args.timer == 'cpu' else time.perf_counter
    t_taps = time_median(taps, device, args.repeats, args.warmup, clock)
    t_full = time_median(full, device, args.repeats, args.warmup, clock)
    t_vae = time_median(vae_only, device, args.repeats, args.warmup, clock)
    for h in hooks:
        h.remove()
    if device.type == 'cuda':
        dev_name = torch.cuda.get_device_name(device)
    else:
        dev_name = f'cpu x{torch.get_num_threads()}'
    print(f'config={args.config} size={args.size} batch={args.batch} '
          f'dtype={args.dtype} device={dev_name} timer={args.timer}')
    print(f'encoder taps (VAE + down + mid): {t_taps * 1e3:9.1f} ms')
    print(f'full U-Net forward + hooks     : {t_full * 1e3:9.1f} ms')
    print(f'VAE encode + noise (shared)    : {t_vae * 1e3:9.1f} ms')
    print(f'ratio full / taps              : {t_full / t_taps:9.2f}x')
    if t_taps > t_vae:
        print(f'U-Net part only, full / taps   : '
              f'{(t_full - t_vae) / (t_taps - t_vae):9.2f}x')


if __name__ == '__main__':
    main()
