# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# SimpleNet (Liu et al. 2023), Table 6 column "SimpleNet".
# Paper §11.2: WideResNet-50 frozen + 12M adaptation network, 150 epochs,
# batch size 32, lr 1e-3, "Mahalanobis distance to memory bank" (the
# original SimpleNet has no memory bank: its score is the discriminator's;
# that is what is implemented). Original code: adaptor AdamW 1e-4,
# discriminator Adam 2e-4, noise std 0.015, margin 0.5, 1536-d features.
model = dict(
    type='SimpleNet',
    backbone=dict(
        arch='wide_resnet50_2',
        layers=('layer2', 'layer3'),
        patch_size=3,
        pretrain_embed_dim=1536,
        embed_dim=1536),
    backbone_checkpoint='checkpoints/wide_resnet50_2-95faca4d.pth',
    adaptor_layers=1,
    hidden_dim=1024,
    discriminator_layers=2,
    noise_std=0.015,
    margin=0.5,
    smooth_sigma=4.0)
