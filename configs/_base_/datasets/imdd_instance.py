# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Shared instance-segmentation data settings of the Stage-2 configs, for any
# dataset converted by imdd-mm's converter (COCO + captions):
#   python data_converters/convert.py SOURCE --root data/SOURCE \
#       --out-dir data/imdd/SOURCE
# -> data/imdd/SOURCE/annotations/{train,val,test}.json whose file_name is
# relative to data/SOURCE (images are not copied). Classes come from the
# file's categories; defect-free images are kept (no instances).
# Dataset files (magnetic_tile.py, ...) inherit this one and set only what
# differs: the annotation and image folders and, where needed, the metrics.
dataset_type = 'IMDDCocoDataset'
data_root = 'data/'
ann_root = 'imdd/source/annotations/'  # <converter --out-dir>/annotations
img_root = 'source/'  # the converter's --root, relative to data_root
image_size = (512, 512)
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(
        type='LoadAnnotations', with_bbox=True, with_mask=True,
        poly2mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PackIMDDInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
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
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=ann_root + 'train.json',
        data_prefix=dict(img=img_root),
        filter_cfg=dict(filter_empty_gt=False, min_size=0),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=ann_root + 'val.json',
        data_prefix=dict(img=img_root),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'], ann_file=ann_root + 'test.json'))

# COCO's box and mask AP, then imdd-mm's metrics (paper Tables 3-6):
# open-vocabulary image classification, mask-derived boxes (same box_mode as
# the model), pixel Acc/F1/IoU/Dice and P-AUROC / AUPRO / I-AUROC.
imdd_metrics = [
    dict(type='IMDDClassificationMetric'),
    dict(type='MaskBoxDetectionMetric', box_mode='mask'),
    dict(type='DefectSegMetric'),
    dict(type='AnomalyMetric'),
]
val_evaluator = [
    dict(
        type='CocoMetric',
        ann_file=data_root + ann_root + 'val.json',
        metric=['bbox', 'segm'],
        format_only=False,
        backend_args=backend_args),
    *imdd_metrics,
]
test_evaluator = [
    dict(val_evaluator[0], ann_file=data_root + ann_root + 'test.json'),
    *imdd_metrics,
]
