# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Tiny CPU SimpleNet (random ResNet-18, 64 px, 1 epoch) on Magnetic Tile.
_base_ = ['../simplenet_wrn50_magnetic_tile.py', './_tiny_data.py']
model = dict(
    backbone=dict(
        _delete_=True, arch='resnet18', pretrain_embed_dim=64, embed_dim=64),
    backbone_checkpoint=None,
    hidden_dim=32,
    seed=0)
train_cfg = dict(max_epochs=1, val_interval=1)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_dataloader = {{_base_.tiny_train_dataloader}}
test_dataloader = {{_base_.tiny_test_dataloader}}
test_evaluator = dict(num_bins=4096)
default_hooks = dict(logger=dict(interval=1))
