# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Baseline (c) of the small study: a plain supervised U-Net (MMSeg's UNet,
# random init, trained end to end on the labelled masks; closed set over the
# Magnetic Tile classes) with the data, resolution, flips, evaluators and
# schedule of configs/imdd/small/stage2_small.py. Size: 1.81M parameters,
# all trained (base_channels=16), between the small recipe's trained head
# (0.13M) and its frozen diffusion U-Net (6.31M, of which the encoder taps use
# the down path); the study gives every run the same CPU-time training budget
# (TimeBudgetHook).
_base_ = ['../../imdd/small/stage2_small.py']

model = dict(
    _delete_=True,
    type='SupervisedUNetSegmenter',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_mask=True,
        mask_pad_value=0,
        pad_seg=False),
    unet=dict(
        in_channels=3,
        base_channels=16,
        num_stages=5,
        norm_cfg=dict(type='GN', num_groups=4),
        upsample_cfg=dict(type='InterpConv')),
    num_classes=5,  # Magnetic Tile: blowhole, break, crack, fray, uneven
    dice_weight=1.0,
    test_cfg=dict(sem_seg_thr=0.3, image_score_thr=0.3))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
custom_hooks = []
