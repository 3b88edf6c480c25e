# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# FAIR-style frequency-aware image restoration (Liu et al. 2023,
# arXiv:2309.07068), Table 6 column "FAIR". Printed as FAIR-style: input,
# network, losses and score follow the official code
# (github.com/liutongkun/FAIR); the synthetic anomalies are simplified and
# the training rotation is missing (configs/baselines/anomaly/README.md,
# "Faithfulness"; imdd_mm/models/anomaly/frequency_restoration.py).
# Additive-skip U-Net trained from scratch on normal images: no pretrained
# weights. 256-px inputs (the dataset base's input_size), as the original.
model = dict(
    type='FrequencyRestorationAD',
    base_channels=128,
    num_stages=5,
    cutoff=30 / 256,  # Butterworth, 30 frequency bins at 256 px
    order=2,
    ssim_weight=1.0,
    synthetic_anomalies=True,
    msgms_scales=2,
    color_weight=0.0003,
    mean_filter_size=21,
    smooth_sigma=0.0)
