# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# DDAD-style conditioned diffusion reconstruction, Table 6 column "DDAD".
# (Paper §11.2 describes its "DMAD" row as a 250M diffusion U-Net, 200
# epochs, 100 steps, cosine schedule; DMAD, Liu et al. CVPR 2023, is not a
# diffusion model: its row is dmad_conv_*.) Here: a DDPM
# UNet2DModel (25.3M params at these widths) with the cosine schedule, test
# noise level 250/1000 and 5 conditioned DDIM steps (DDAD: w=3), feature
# distance from frozen WRN-50 layer1-3 plus pixel distance.
model = dict(
    type='DiffusionReconstructionAD',
    unet=dict(
        sample_size=256,
        in_channels=3,
        out_channels=3,
        layers_per_block=2,
        block_out_channels=(64, 128, 256, 256),
        down_block_types=('DownBlock2D', 'DownBlock2D', 'AttnDownBlock2D',
                          'DownBlock2D'),
        up_block_types=('UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D',
                        'UpBlock2D')),
    num_train_timesteps=1000,
    beta_schedule='squaredcos_cap_v2',
    test_timestep=250,
    num_inference_steps=5,
    condition_weight=3.0,
    feature_extractor=dict(
        arch='wide_resnet50_2', layers=('layer1', 'layer2', 'layer3')),
    backbone_checkpoint='checkpoints/wide_resnet50_2-95faca4d.pth',
    feature_weight=0.5,
    smooth_sigma=4.0)
