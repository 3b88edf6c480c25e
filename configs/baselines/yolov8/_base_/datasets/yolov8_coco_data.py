# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Data pipeline of the YOLOv8 baseline (§11.2) on a converters' COCO file,
# with the same files and paths as our own configs (configs/_base_/datasets):
#   python data_converters/convert.py SOURCE --root data/SOURCE \
#       --out-dir data/imdd/SOURCE
# -> data/imdd/SOURCE/annotations/{train,val,test}.json, file names relative
# to data/SOURCE. Dataset configs override ``data_root`` / ``data_prefix`` /
# ``ann_file`` and the evaluators' files.
dataset_type = 'IMDDCocoDataset'  # classes = the file's categories
data_root = 'data/'
img_root = 'source/'  # the converter's --root, relative to data_root
ann_root = 'imdd/source/annotations/'  # <converter --out-dir>/annotations
img_scale = (640, 640)  # (w, h)
backend_args = None

pre_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args,
         color_type='color'),
    dict(type='LoadAnnotations', with_bbox=True),
    # long side to 640 before mosaic (no padding)
    dict(type='Resize', scale=img_scale, keep_ratio=True),
]

train_pipeline = [
    dict(type='Mosaic', img_scale=img_scale, pad_val=114.0, prob=0.8),
    # centred scale 0.5-1.5 / translate 0.1 into 640 x 640 (crops the 2x
    # mosaic canvas; keeps the whole image when mosaic was skipped)
    dict(
        type='YOLOv8RandomAffine', img_scale=img_scale,
        scaling_ratio_range=(0.5, 1.5), max_translate_ratio=0.1,
        max_rotate_degree=0.0, max_shear_degree=0.0),
    dict(
        type='YOLOv8MixUp', prob=0.15, img_scale=img_scale,
        ratio_range=(0.5, 1.5), pad_val=114.0),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='PackDetInputs'),
]

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args,
         color_type='color'),
    dict(type='LetterResize', scale=img_scale, pad_val=114,
         allow_scale_up=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'letterbox_pad')),
]

train_dataloader = dict(
    batch_size=4,  # x 4 GPUs = 16 (paper); or 2 x 8 GPUs
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='MultiImageMixDataset',
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            data_prefix=dict(img=img_root),
            ann_file=ann_root + 'train.json',
            filter_cfg=dict(filter_empty_gt=False, min_size=1),
            pipeline=pre_pipeline,
            backend_args=backend_args),
        pipeline=train_pipeline))

val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img=img_root),
        ann_file=ann_root + 'val.json',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img=img_root),
        ann_file=ann_root + 'test.json',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))

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
