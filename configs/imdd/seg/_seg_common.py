# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Shared pieces of imdd-mm's MMSegmentation configs (semantic defect
# segmentation scored by mmseg's IoUMetric). Label 0 is the defect-free
# surface, label k+1 the converter's k-th category.
#   python data_converters/convert.py magnetic_tile --root data/magnetic_tile \
#       --out-dir data/imdd/magnetic_tile
default_scope = 'mmseg'
custom_imports = dict(imports=['imdd_mm'], allow_failed_imports=False)

dataset_type = 'IMDDCocoSegDataset'
data_root = 'data/'
ann_root = 'imdd/magnetic_tile/annotations/'
img_root = 'magnetic_tile/'
image_size = (512, 512)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadIMDDSemSegAnnotations'),
    dict(type='Resize', scale=image_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=False),
    dict(type='LoadIMDDSemSegAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=ann_root + 'train.json',
        data_prefix=dict(img_path=img_root),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=ann_root + 'val.json',
        data_prefix=dict(img_path=img_root),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU', 'mFscore'])
test_evaluator = val_evaluator

data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=64)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
    frozen_sources=dict(type='mmdet.FrozenSourcesHook'))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False

# Full-size model (children override sizes / classes). mmdet components
# inside the head need the ``mmdet.`` scope prefix.
model = dict(
    type='IMDDEncoderDecoder',
    data_preprocessor=data_preprocessor,
    cond_mode='implicit',  # Table 7 ablations: 'null' / 'none'
    stage1_checkpoint=None,
    # paper's pretrained frozen parts (see configs/_base_/models/
    # imdd_mask2former.py); True accepts random ones
    allow_random_frozen=False,
    backbone=dict(
        type='IMDDDiffusionBackbone',
        timestep=50,
        vae=dict(
            pretrained='stable-diffusion-v1-5/stable-diffusion-v1-5',
            subfolder='vae')),
    captioner=dict(type='ImplicitCaptioner', pretrained='openai'),
    decode_head=dict(
        type='OVMask2FormerSegHead',
        vocabulary=None,  # set to the dataset's classes (label order)
        in_channels=None,
        strides=[8, 16, 32, 64],
        feat_channels=256,
        out_channels=256,
        num_queries=100,
        num_transformer_feat_level=3,
        text_encoder=dict(
            type='IMDDCLIPTextEncoder', model_name='ViT-L-14',
            pretrained='openai'),
        pixel_decoder=dict(
            type='mmdet.MultiScaleFPNPixelDecoder',
            norm_cfg=dict(type='GN', num_groups=32)),
        loss_cls=dict(
            type='mmdet.CrossEntropyLoss', use_sigmoid=False,
            loss_weight=0.5, reduction='mean'),
        loss_mask=dict(
            type='mmdet.CrossEntropyLoss', use_sigmoid=True,
            reduction='mean', loss_weight=1.0),
        loss_dice=dict(
            type='mmdet.DiceLoss', use_sigmoid=True, activate=True,
            reduction='mean', naive_dice=True, eps=1.0, loss_weight=1.0),
        train_cfg=dict(
            num_points=12544,
            oversample_ratio=3.0,
            importance_sample_ratio=0.75,
            assigner=dict(
                type='mmdet.HungarianAssigner',
                match_costs=[
                    dict(type='mmdet.ClassificationCost', weight=2.0),
                    dict(
                        type='mmdet.CrossEntropyLossCost', weight=5.0,
                        use_sigmoid=True),
                    dict(
                        type='mmdet.DiceCost', weight=5.0, pred_act=True,
                        eps=1.0)
                ]),
            sampler=dict(type='mmdet.MaskPseudoSampler'))),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
