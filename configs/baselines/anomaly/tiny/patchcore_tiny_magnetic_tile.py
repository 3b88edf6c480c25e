# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Tiny CPU PatchCore (random ResNet-18, 64 px) on Magnetic Tile.
_base_ = ['../patchcore_wrn50_magnetic_tile.py', './_tiny_data.py']
model = dict(
    backbone=dict(
        _delete_=True, arch='resnet18', pretrain_embed_dim=64, embed_dim=64),
    backbone_checkpoint=None,
    coreset_ratio=0.25)
train_dataloader = {{_base_.tiny_train_dataloader}}
test_dataloader = {{_base_.tiny_test_dataloader}}
test_evaluator = dict(num_bins=4096)
default_hooks = dict(logger=dict(interval=1))
