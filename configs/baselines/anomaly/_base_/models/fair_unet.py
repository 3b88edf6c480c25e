# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# FAIR-style frequency-aware image restoration (Liu et al. 2023), Table 6
# column "FAIR" (printed as FAIR-style: built from the paper's abstract;
# filter, widths, losses and post-processing are our choices, see
# imdd_mm/models/anomaly/frequency_restoration.py). A plain mmseg UNet
# trained from scratch on normal images: no pretrained weights.
model = dict(
    type='FrequencyRestorationAD',
    base_channels=64,
    num_stages=5,
    cutoff=0.05,
    ssim_weight=1.0,
    image_topk=0.01,
    smooth_sigma=4.0)
