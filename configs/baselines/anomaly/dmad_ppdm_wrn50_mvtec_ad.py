# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# DMAD-PPDM-style (pre-deformation + Reverse Distillation of a frozen
# ImageNet WRN-50) on MVTec AD, the official recipe (256 px, AdamW 0.005,
# betas (0.5, 0.999), cosine, 400 epochs, batch 8); Table 6 row
# 'DMAD-PPDM-style'. Needs checkpoints/wide_resnet50_2-95faca4d.pth.
#   python tools/train.py THIS_CONFIG
#   python tools/test.py THIS_CONFIG \
#       work_dirs/dmad_ppdm_wrn50_mvtec_ad/epoch_400.pth
_base_ = [
    './_base_/models/dmad_ppdm_wrn50.py',
    './_base_/datasets/mvtec_ad.py',
    './_base_/schedules/adamw_400e_cosine.py',
    './_base_/default_runtime.py',
]
train_dataloader = dict(batch_size=8)
