# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# FAIR-style frequency-aware image restoration (Liu et al. 2023,
# arXiv:2309.07068), Table 6 column "FAIR". Printed as FAIR-style: input,
# network, losses, synthetic anomalies, training rotation and score follow
# the official code (github.com/liutongkun/FAIR); what still differs is
# listed in configs/baselines/anomaly/README.md ("Faithfulness").
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
    # Perlin anomaly sources: None = the training images through 3 of the
    # original's no-DTD augmenters (no extra data); for the original's DTD
    # variant download https://www.robots.ox.ac.uk/~vgg/data/dtd/
    # (dtd-r1.0.1.tar.gz) and point at its images folder:
    # texture_dir='data/dtd/images',
    texture_dir=None,
    rotate_prob=0.3,  # training images rotated by U(-90, 90) degrees
    msgms_scales=2,
    color_weight=0.0003,
    mean_filter_size=21,
    smooth_sigma=0.0)
