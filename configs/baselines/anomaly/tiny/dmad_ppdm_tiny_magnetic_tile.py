# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Tiny CPU DMAD-PPDM-style (RANDOM ResNet-18 teacher, seed 0, declared with
# allow_random_frozen=True; 16-wide pre-deformation net; 64 px, 1 epoch) on
# Magnetic Tile. Tests and smoke runs only: with a random teacher the
# numbers say nothing about the method.
_base_ = ['../dmad_ppdm_wrn50_magnetic_tile.py', './_tiny_data.py']
model = dict(
    teacher_arch='resnet18',
    teacher_checkpoint=None,
    teacher_seed=0,
    allow_random_frozen=True,
    decoder_layers=(1, 1, 1),
    bottleneck_blocks=1,
    offset_channels=8)
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = []
train_dataloader = {{_base_.tiny_train_dataloader}}
test_dataloader = {{_base_.tiny_test_dataloader}}
test_evaluator = dict(num_bins=4096)
default_hooks = dict(logger=dict(interval=1))
