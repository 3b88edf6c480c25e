# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Converter COCO output for anomaly baselines: fit on the *normal* images of
# the train split, test on every image of the test split.
# Images are resized (no crop) to `input_size`; the ground-truth masks are
# loaded after the resize so the metric compares at the original size, the
# size of the models' `pred_score_map`.
dataset_type = 'AnomalyCocoDataset'
img_root = 'data/'
ann_root = 'data/imdd/'
input_size = (256, 256)
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', color_type='color',
         backend_args=backend_args),
    dict(type='Resize', scale=input_size, keep_ratio=False),
    dict(type='PackIMDDInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='color',
         backend_args=backend_args),
    dict(type='Resize', scale=input_size, keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackIMDDInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        type=dataset_type,
        data_root='',
        data_prefix=dict(img=img_root),
        ann_file=ann_root + 'annotations/train.json',
        normality='normal',
        pipeline=train_pipeline,
        backend_args=backend_args))
test_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root='',
        data_prefix=dict(img=img_root),
        ann_file=ann_root + 'annotations/test.json',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
# P-AUROC, AUPRO (FPR <= 0.3) and I-AUROC from `pred_score_map` /
# `pred_image_score` (imdd_mm.evaluation.metrics).
test_evaluator = dict(type='AnomalyMetric')
