# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# SimpleNet (WRN-50) on Magnetic Tile; Table 6 column 'SimpleNet'.
_base_ = [
    './_base_/models/simplenet_wrn50.py',
    './_base_/datasets/magnetic_tile.py',
    './_base_/schedules/adamw_150e.py',
    './_base_/default_runtime.py',
]
train_dataloader = dict(batch_size=32)
