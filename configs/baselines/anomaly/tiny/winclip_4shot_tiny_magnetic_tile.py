# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Tiny CPU few-shot CLIP prompts (random tiny open_clip model, 64 px).
_base_ = ['../winclip_4shot_vit_b16_magnetic_tile.py', './_tiny_data.py']
model = dict(
    pretrained=None,
    model_cfg=dict(
        embed_dim=32,
        vision_cfg=dict(image_size=64, layers=2, width=32, head_width=16,
                        patch_size=8, mlp_ratio=2.0),
        text_cfg=dict(context_length=77, vocab_size=49408, width=32,
                      heads=2, layers=2)),
    memory_layers=(0, 1))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(pipeline={{_base_.tiny_train_pipeline}}))
test_dataloader = dict(
    batch_size=3, num_workers=0, persistent_workers=False,
    dataset=dict(pipeline={{_base_.tiny_test_pipeline}}))
test_evaluator = dict(num_bins=4096)
default_hooks = dict(logger=dict(interval=1))
