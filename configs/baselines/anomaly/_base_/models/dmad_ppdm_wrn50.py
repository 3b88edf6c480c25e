# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# DMAD-PPDM-style (Liu et al., "Diversity-Measurable Anomaly Detection",
# CVPR 2023, arXiv:2303.05047; the official code's DMAD-PPDM variant,
# behind the paper's MVTec AD numbers), Table 6 row "DMAD-PPDM-style":
# pre-deformation of the input (coarse 1/8-resolution field bounded by 8 px
# and fine 1/2-resolution field bounded by 3 px at 256 px, two inverse
# fields) + Reverse Distillation of a frozen ImageNet WRN-50 (layers 1-3)
# through RD's one-class bottleneck into RD's reverse-ResNet decoder.
# use_vq=False: the official pixel-level checkpoints (the image-level ones
# add a 200-code VQ on layer 3: --cfg-options model.use_vq=True).
# Differences from the official code: configs/baselines/anomaly/README.md,
# "Faithfulness". The teacher is read from the local file below (nothing is
# downloaded): without it the build stops with "backbone weights ... not
# found"; model.allow_random_frozen=True would run a RANDOM teacher instead
# (recorded in checkpoints and results; numbers then meaningless).
model = dict(
    type='ReverseDistillationPPDM',
    teacher_arch='wide_resnet50_2',
    teacher_checkpoint='checkpoints/wide_resnet50_2-95faca4d.pth',
    allow_random_frozen=False,
    decoder_layers=(3, 4, 6),
    bottleneck_blocks=3,
    use_vq=False,
    num_codes=200,
    commitment=0.25,
    offset_channels=64,
    field_strides=(8, 2),
    max_offsets=(2 * 8 / 256, 2 * 3 / 256),
    inverse_weight=1.0,
    deform_weight=0.05,
    smooth_sigma=4.0)
