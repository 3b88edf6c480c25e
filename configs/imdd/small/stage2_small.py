# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# CPU-scale Stage 2 on Magnetic Tile: the small U-Net/VAE of _small_nets.py
# (U-Net from configs/imdd/small/stage1_small.py), frozen, with its features
# cached on disk (model.feature_cache) so that every epoch after the first
# trains only the open-vocabulary Mask2Former head.
#
# Thin defects: the head reads the VAE encoder's stride-4 map beside the
# U-Net's stride-8/16/32 encoder maps (mask features at stride 4, 48x48),
# at 192 px. (The stride-2 VAE map, 'vae_s2', doubles the head's cost on
# this CPU for little gain at 192 px.)
#
#   bash tools/misc/prepare_small_data.sh          # converters + corpus
#   python tools/train.py configs/imdd/small/stage1_small.py
#   python tools/train.py configs/imdd/small/stage2_small.py
#   python tools/test.py configs/imdd/small/stage2_small.py \
#       work_dirs/stage2_small/iter_3000.pth
_base_ = ['../tiny/stage2_tiny.py', './_small_nets.py']

image_size = (192, 192)
feature_keys = ('vae_s4', 's8', 's16', 's32')
strides = [4, 8, 16, 32]
stage1_ckpt = 'work_dirs/stage1_small/iter_600.pth'
max_iters = 3000

model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    stage1_checkpoint=stage1_ckpt,
    feature_keys=feature_keys,
    feature_cache=dict(
        cache_dir='work_dirs/feature_cache', max_bytes=8 * 2**30,
        dtype='fp16', flip_features=True),
    backbone=dict(
        unet={{_base_.small_unet}},
        vae={{_base_.small_vae}},
        out_features=feature_keys),
    captioner=dict(model_name={{_base_.small_clip}}),
    panoptic_head=dict(
        strides=strides,
        num_queries=20,
        num_transformer_feat_level=3),
    train_cfg=dict(num_points=512),
    test_cfg=dict(
        max_per_image=20, mask_thr=0.5, sem_seg_thr=0.3,
        image_score_thr=0.3))

data_root = ''
ann_root = 'data/imdd/magnetic_tile/annotations/'
img_root = '../shared/data/magnetic_tile/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='LoadAnnotations', with_bbox=True, with_mask=True,
        poly2mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=False),
    # flips are applied to the cached features (flip_features=True)
    dict(type='RandomFlip', prob=[0.25, 0.25],
         direction=['horizontal', 'vertical']),
    dict(type='PackIMDDInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=False),
    dict(
        type='LoadAnnotations', with_bbox=True, with_mask=True,
        poly2mask=True),
    dict(
        type='PackIMDDInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    dataset=dict(
        data_root=data_root,
        ann_file=ann_root + 'train.json',
        data_prefix=dict(img=img_root),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file=ann_root + 'test.json',
        data_prefix=dict(img=img_root),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='IMDDClassificationMetric'),
    dict(type='MaskBoxDetectionMetric', box_mode='mask'),
    dict(type='DefectSegMetric'),
    dict(type='AnomalyMetric'),
]
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=3e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=0,
         end=max_iters, T_max=max_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=10**9)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=max_iters,
                    by_epoch=False))
