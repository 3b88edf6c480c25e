# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# CLIP prompt anomaly detection (WinCLIP zero-/few-shot; PromptAD learnable
# prompts), Table 6 column "PromptAD".
# Paper §11.2 (PromptAD): CLIP ViT-B/16 with learnable prompts, 86M frozen
# encoders + prompts of 10 tokens, 4-shot, 50 epochs, AdamW lr 1e-4.
# open_clip weights from a local file: the OpenAI ViT-B/16 weights as
# open_clip publishes them (hf_hub timm/vit_base_patch16_clip_224.openai,
# file open_clip_pytorch_model.bin, renamed below); OpenAI's weights use
# QuickGELU, hence the '-quickgelu' architecture (README "Weights").
model = dict(
    type='CLIPPromptAD',
    model_name='ViT-B-16-quickgelu',
    pretrained='checkpoints/open_clip_vit_b16_openai.bin',
    # None: each image's object from the dataset (AnomalyCocoDataset sets
    # metainfo['object_name'], e.g. 'metal nut'); a string overrides it.
    object_name=None,
    window_sizes=(1, 3, 5),
    few_shot=False,
    memory_layers=(5, 8, 11),
    learnable_prompts=False,
    n_ctx=10,
    smooth_sigma=4.0)
# 224-px pipelines of CLIP ViT-B/16
clip_train_pipeline = [
    dict(type='LoadImageFromFile', color_type='color', backend_args=None),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='PackIMDDInputs')
]
clip_test_pipeline = [
    dict(type='LoadImageFromFile', color_type='color', backend_args=None),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackIMDDInputs')
]
