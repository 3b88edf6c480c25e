# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# WinCLIP-style zero-shot CLIP prompts on MVTec AD (training-free):
#   python tools/test.py THIS_CONFIG
_base_ = [
    './_base_/models/clip_prompt_ad_vit_b16.py',
    './_base_/datasets/mvtec_ad.py',
    './_base_/schedules/test_only.py',
    './_base_/default_runtime.py',
]
train_dataloader = None
test_dataloader = dict(dataset=dict(pipeline={{_base_.clip_test_pipeline}}))
