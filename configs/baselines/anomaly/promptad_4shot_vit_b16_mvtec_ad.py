# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# PromptAD-style learnable prompts, 4-shot, on MVTec AD; Table 6 column
# 'PromptAD' (§11.2: 10 context tokens, 50 epochs, AdamW 1e-4).
_base_ = [
    './_base_/models/clip_prompt_ad_vit_b16.py',
    './_base_/datasets/mvtec_ad.py',
    './_base_/schedules/adamw_50e.py',
    './_base_/default_runtime.py',
]
model = dict(few_shot=True, learnable_prompts=True, n_ctx=10)
train_dataloader = dict(
    batch_size=4,
    dataset=dict(max_images=4, pipeline={{_base_.clip_train_pipeline}}))
test_dataloader = dict(dataset=dict(pipeline={{_base_.clip_test_pipeline}}))
