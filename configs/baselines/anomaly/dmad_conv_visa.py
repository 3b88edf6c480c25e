# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# DMAD-style reconstruction with pyramid deformation on VisA; Table 6
# column 'DMAD' (DMAD-style).
#   python tools/train.py THIS_CONFIG
#   python tools/test.py THIS_CONFIG work_dirs/dmad_conv_visa/epoch_200.pth
_base_ = [
    './_base_/models/dmad_conv.py',
    './_base_/datasets/visa.py',
    './_base_/schedules/adamw_200e.py',
    './_base_/default_runtime.py',
]
train_dataloader = dict(batch_size=16)
