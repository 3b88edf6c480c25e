# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# FAIR-style restoration from high frequencies on MVTec AD; Table 6 column
# 'FAIR' (FAIR-style).
#   python tools/train.py THIS_CONFIG
#   python tools/test.py THIS_CONFIG work_dirs/fair_unet_mvtec_ad/epoch_800.pth
_base_ = [
    './_base_/models/fair_unet.py',
    './_base_/datasets/mvtec_ad.py',
    './_base_/schedules/adam_800e.py',
    './_base_/default_runtime.py',
]
train_dataloader = dict(batch_size=8)  # FAIR: batch 8
