# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# MuSc-style zero-shot mutual scoring (ViT-B/16) on MVTec AD; Table 6
# column 'MuSc'. Training-free: python tools/test.py THIS_CONFIG
# (backbone weights come from model.backbone_checkpoint).
# The whole test split is one mutually scored set (SetScoringHook); the
# batch size only sets memory use.
_base_ = [
    './_base_/models/musc_vit_b16.py',
    './_base_/datasets/mvtec_ad.py',
    './_base_/schedules/test_only.py',
    './_base_/default_runtime.py',
]
train_dataloader = None
test_dataloader = dict(
    batch_size=32,
    dataset=dict(pipeline={{_base_.vit_test_pipeline}}))
