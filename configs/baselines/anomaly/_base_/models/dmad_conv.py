# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# DMAD-style diversity-measurable reconstruction (Liu et al., CVPR 2023,
# arXiv:2303.05047), Table 6 column "DMAD". Printed as DMAD-style: the
# abstract's image-space design (prototype reference + pyramid deformation
# from the reference to the input); the paper's MVTec AD numbers come from
# the official code's feature-space DMAD-PPDM variant (pre-deformation +
# Reverse Distillation of a frozen WRN-50), the separate DMAD-PPDM-style
# row (dmad_ppdm_wrn50_*.py); widths,
# memory size, loss weights and score weights are ours
# (configs/baselines/anomaly/README.md, "Faithfulness"). Not a diffusion
# model. Trained from scratch on normal images: no pretrained weights.
model = dict(
    type='DiversityMeasurableAD',
    channels=64,
    latent_dim=128,
    num_prototypes=512,
    pdm_channels=32,
    scales=(0.25, 0.5, 1.0),
    max_offset=0.1,
    ref_weight=0.1,
    commitment=0.25,
    smooth_weight=0.1,
    deform_weight=1.0,
    image_topk=0.01,
    smooth_sigma=4.0)
