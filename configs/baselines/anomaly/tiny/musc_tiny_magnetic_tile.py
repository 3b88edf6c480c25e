# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Tiny CPU mutual scoring (random 2-block ViT, 64 px) on Magnetic Tile.
_base_ = ['../musc_vit_b16_magnetic_tile.py', './_tiny_data.py']
model = dict(
    backbone=dict(
        _delete_=True,
        source='torchvision',
        layers=(0, 1),
        model_cfg=dict(image_size=64, patch_size=8, num_layers=2,
                       num_heads=2, hidden_dim=32, mlp_dim=64)),
    backbone_checkpoint=None,
    aggregation_degrees=(1, 3))
test_dataloader = dict(
    batch_size=5, num_workers=0, persistent_workers=False,
    dataset=dict(pipeline={{_base_.tiny_test_pipeline}}))
test_evaluator = dict(num_bins=4096)
default_hooks = dict(logger=dict(interval=1))
