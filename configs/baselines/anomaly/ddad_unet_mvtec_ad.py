# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# DDAD-style conditioned diffusion reconstruction on MVTec AD;
# Table 6 column 'DDAD' (DDAD-style; DMAD is a different method:
# dmad_conv_*).
_base_ = [
    './_base_/models/diffusion_recon_unet.py',
    './_base_/datasets/mvtec_ad.py',
    './_base_/schedules/adamw_200e.py',
    './_base_/default_runtime.py',
]
train_dataloader = dict(batch_size=32)
