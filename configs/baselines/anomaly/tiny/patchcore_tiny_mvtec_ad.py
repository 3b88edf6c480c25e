# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Tiny CPU PatchCore (random ResNet-18: smoke runs and tests only, never a
# reported number) on MVTec AD, one category per run
# (--cfg-options category=<name>; data as in ../_base_/datasets/mvtec_ad.py).
_base_ = ['./patchcore_tiny_magnetic_tile.py']
category = 'bottle'
train_dataloader = dict(
    dataset=dict(
        data_prefix=dict(img='data/mvtec_ad/'),
        ann_file='data/imdd/mvtec_ad/annotations/train.json',
        file_prefix='${category}/'))
test_dataloader = dict(
    dataset=dict(
        data_prefix=dict(img='data/mvtec_ad/'),
        ann_file='data/imdd/mvtec_ad/annotations/test.json',
        file_prefix='${category}/'))
