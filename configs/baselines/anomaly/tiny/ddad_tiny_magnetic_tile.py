# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Tiny CPU conditioned diffusion reconstruction (64 px, 1 epoch).
_base_ = ['../ddad_unet_magnetic_tile.py', './_tiny_data.py']
model = dict(
    unet=dict(
        _delete_=True,
        sample_size=64,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(8, 16),
        norm_num_groups=4,
        add_attention=False,
        down_block_types=('DownBlock2D', 'DownBlock2D'),
        up_block_types=('UpBlock2D', 'UpBlock2D')),
    feature_extractor=dict(
        _delete_=True, arch='resnet18', layers=('layer1', 'layer2')),
    backbone_checkpoint=None,
    test_timestep=100,
    num_inference_steps=1)
train_cfg = dict(max_epochs=1, val_interval=1)
train_dataloader = {{_base_.tiny_train_dataloader}}
test_dataloader = {{_base_.tiny_test_dataloader}}
test_evaluator = dict(num_bins=4096)
default_hooks = dict(logger=dict(interval=1))
