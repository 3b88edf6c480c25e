# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Tiny YOLOv8 on NEU-DET for CPU tests and the quick start (0.36M
# parameters, 160 px, 3 epochs, no AMP). Same pipeline and losses as the
# paper configs, only smaller.
#   python data_converters/convert.py neu_det --root data/neu_det \
#       --out-dir data/imdd/neu_det
#   python tools/train.py configs/baselines/yolov8/yolov8_tiny_neu_det.py
# (data/neu_det may be a link to ../shared/data/neu_det)
_base_ = [
    './_base_/yolov8_m.py', './_base_/datasets/neu_det.py',
    './_base_/schedule_sgd_cosine_300e.py'
]
data_root = 'data/'
img_root = 'neu_det/'
ann_root = 'imdd/neu_det/annotations/'
img_scale = (160, 160)
deepen_factor = 0.33
widen_factor = 0.0625
last_stage_out_channels = 1024
max_epochs = 3
warmup_epochs = 1

model = dict(
    backbone=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        last_stage_out_channels=last_stage_out_channels),
    neck=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        last_stage_out_channels=last_stage_out_channels),
    bbox_head=dict(
        num_classes={{_base_.num_classes}},
        widen_factor=widen_factor,
        last_stage_out_channels=last_stage_out_channels),
    test_cfg=dict(max_per_img=100))

pre_pipeline = [
    dict(type='LoadImageFromFile', color_type='color'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
]
train_pipeline = [
    dict(type='Mosaic', img_scale=img_scale, pad_val=114.0, prob=0.8),
    dict(
        type='YOLOv8RandomAffine', img_scale=img_scale,
        scaling_ratio_range=(0.5, 1.5), max_translate_ratio=0.1),
    dict(
        type='YOLOv8MixUp', prob=0.15, img_scale=img_scale,
        ratio_range=(0.5, 1.5), pad_val=114.0),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='color'),
    dict(type='LetterResize', scale=img_scale, pad_val=114),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'letterbox_pad')),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(
        dataset=dict(
            data_prefix=dict(img=img_root),
            ann_file=ann_root + 'train.json',
            pipeline=pre_pipeline),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(
        data_prefix=dict(img=img_root),
        ann_file=ann_root + 'val.json',
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(
        data_prefix=dict(img=img_root),
        ann_file=ann_root + 'test.json',
        pipeline=test_pipeline))
backend_args = None
val_evaluator = [
    # mAP@[.5:.95], mAP@0.5, mAP@0.75 from pycocotools on the COCO file
    dict(
        type='CocoMetric',
        ann_file=data_root + ann_root + 'val.json',
        metric='bbox',
        classwise=True,
        format_only=False,
        backend_args=backend_args),
    # Table 4 side by side with ours: mAP@0.5 / 0.75 and average IoU
    # (our detector derives its boxes from masks, box_mode='mask'; the COCO
    # boxes of mask sources are the masks' boxes, i.e. the same convention)
    dict(
        type='MaskBoxDetectionMetric',
        box_mode='mask',
        gt_box_source='boxes',
        pred_box_source='boxes'),
]
test_evaluator = [
    # mAP@[.5:.95], mAP@0.5, mAP@0.75 from pycocotools on the COCO file
    dict(
        type='CocoMetric',
        ann_file=data_root + ann_root + 'test.json',
        metric='bbox',
        classwise=True,
        format_only=False,
        backend_args=backend_args),
    # Table 4 side by side with ours: mAP@0.5 / 0.75 and average IoU
    # (our detector derives its boxes from masks, box_mode='mask'; the COCO
    # boxes of mask sources are the masks' boxes, i.e. the same convention)
    dict(
        type='MaskBoxDetectionMetric',
        box_mode='mask',
        gt_box_source='boxes',
        pred_box_source='boxes'),
]

train_cfg = dict(max_epochs=max_epochs, val_interval=1)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='SGD', lr=0.01, momentum=0.937, weight_decay=5e-4,
        nesterov=True),
    clip_grad=dict(max_norm=10.0),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=True, begin=0,
        end=warmup_epochs, convert_to_iter_based=True),
    dict(
        type='LinearMomentum', start_factor=0.8 / 0.937, by_epoch=True,
        begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR', eta_min_ratio=0.001, by_epoch=True,
        begin=warmup_epochs, end=max_epochs,
        T_max=max_epochs - warmup_epochs, convert_to_iter_based=True),
]
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=1),
    logger=dict(interval=10))
custom_hooks = [
    dict(
        type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001,
        update_buffers=True, priority=49),
    dict(
        type='YOLOXModeSwitchHook', num_last_epochs=1,
        skip_type_keys=('Mosaic', 'YOLOv8MixUp'), priority=48),
]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
