# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# WinCLIP+-style few-shot (4 normal shots) CLIP prompts on Magnetic Tile:
#   python tools/train.py THIS_CONFIG   (one pass: the 4-shot memory)
_base_ = [
    './_base_/models/clip_prompt_ad_vit_b16.py',
    './_base_/datasets/magnetic_tile.py',
    './_base_/schedules/fit_memory_bank.py',
    './_base_/default_runtime.py',
]
model = dict(few_shot=True)
train_dataloader = dict(
    batch_size=4,
    dataset=dict(max_images=4, pipeline={{_base_.clip_train_pipeline}}))
test_dataloader = dict(dataset=dict(pipeline={{_base_.clip_test_pipeline}}))
