# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# CPU-scale Stage 1: diffusion pretraining of the small U-Net (and the
# implicit captioner's MLP) on the real images of ../shared/data (Magnetic
# Tile, NEU-DET, ELPV) as unlabeled image-caption pairs, merged by our
# converters and corpus builder into one corpus from which every evaluation
# split (val/test) is excluded:
#
#   bash tools/misc/prepare_small_data.sh     # -> data/imdd/corpus_small
#   python tools/train.py configs/imdd/small/stage1_small.py
#
# A benchmark-sized job, not a test (see configs/imdd/small/README.md for
# its measured wall-clock time).
_base_ = ['../tiny/stage1_tiny.py', './_small_nets.py']

resolution = 128
max_iters = 600
warmup_iters = 50
base_lr = 5e-4
min_lr = 1e-5

model = dict(
    unet={{_base_.small_unet}},
    vae={{_base_.small_vae}},
    captioner=dict(model_name={{_base_.small_clip}}))

train_pipeline = [
    dict(type='LoadImageFromFile', color_type='color'),
    dict(type='RandomResizedCropImage', size=resolution, scale=(0.5, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'caption',
                   'source', 'is_normal'))
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        _delete_=True,
        type='IMDDCorpusDataset',
        data_root='data/imdd/corpus_small/',
        ann_file='index.json',
        with_instances=False,
        filter_cfg=dict(splits=['train'], require_caption=True),
        pipeline=train_pipeline))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=min_lr / base_lr, end_factor=1.0,
         by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=min_lr, by_epoch=False, begin=0,
         end=max_iters, T_max=max_iters)
]
optim_wrapper = dict(optimizer=dict(lr=base_lr))
# EMA decay 0.995 (momentum 5e-3) over 600 iterations
custom_hooks = [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage',
         momentum=5e-3, interval=1, update_buffers=False, priority=49)
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=max_iters, max_keep_ckpts=1))
generation = dict(height=resolution, width=resolution)
