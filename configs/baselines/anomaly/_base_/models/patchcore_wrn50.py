# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# PatchCore (Roth et al. 2022): frozen WideResNet-50 layer2+layer3, 3x3
# local aggregation, 1024-d patch embedding, greedy coreset 10 % with a
# 128-d random projection, 1-NN patch score, image score re-weighted with
# b=9 neighbours, Gaussian sigma 4. Not part of Table 6; the reference
# memory-bank baseline. ImageNet WRN-50 weights from a local file
# (torchvision `wide_resnet50_2` state dict).
model = dict(
    type='PatchCore',
    backbone=dict(
        arch='wide_resnet50_2',
        layers=('layer2', 'layer3'),
        patch_size=3,
        pretrain_embed_dim=1024,
        embed_dim=1024),
    backbone_checkpoint='checkpoints/wide_resnet50_2-95faca4d.pth',
    coreset_ratio=0.1,
    projection_dim=128,
    num_neighbors=9,
    smooth_sigma=4.0)
