# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Tiny CPU DMAD-style model (64 px, 1 epoch) on Magnetic Tile.
_base_ = ['../dmad_conv_magnetic_tile.py', './_tiny_data.py']
model = dict(channels=8, latent_dim=16, num_prototypes=32, pdm_channels=8)
train_cfg = dict(max_epochs=1, val_interval=1)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_dataloader = {{_base_.tiny_train_dataloader}}
test_dataloader = {{_base_.tiny_test_dataloader}}
test_evaluator = dict(num_bins=4096)
default_hooks = dict(logger=dict(interval=1))
