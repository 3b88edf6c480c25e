# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# The small recipe trained on NEU-DET (box-only: each box is a rectangle
# mask, DESIGN "Box-only sources"), the in-domain reference of the zero-shot
# transfer study (zero_shot_mt_to_neu.py). Tested on NEU-DET's test split.
_base_ = ['./stage2_small.py']
ann_root = 'data/imdd/neu_det/annotations/'
img_root = '../shared/data/neu_det/'
model = dict(
    box_mode='mask',
    feature_cache=dict(cache_dir='work_dirs/feature_cache_neu'))
train_dataloader = dict(dataset=dict(
    ann_file=ann_root + 'train.json', data_prefix=dict(img=img_root)))
val_dataloader = dict(dataset=dict(
    ann_file=ann_root + 'test.json', data_prefix=dict(img=img_root)))
test_dataloader = val_dataloader
