# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# MuSc-style zero-shot mutual scoring, Table 6 column "MuSc".
# Paper §11.2: "ViT-B/16 pre-trained on ImageNet-21K ... 2.3M trainable
# projection, 100 epochs, batch size 32, lr 1e-3". MuSc itself is
# training-free; this implementation is too (no projection is trained):
# patch tokens of blocks 3/6/9/12 of ViT-B/16, aggregation degrees r=1,3,5,
# interval averaging over the lowest 30 % of the other images, RsCIN-style
# image re-scoring (windows 2, 3). The scored set is the whole test split
# (SetScoringHook scores it before the first batch): batch size and order
# do not change the scores.
model = dict(
    type='MutualScoring',
    backbone=dict(source='torchvision', arch='vit_b_16',
                  layers=(2, 5, 8, 11)),
    # torchvision ImageNet-1k ViT-B/16 (vit_b_16-c867db91.pth); §11.2's
    # ImageNet-21k weights exist only as timm checkpoints (other key names,
    # no converter here): README "Weights".
    backbone_checkpoint='checkpoints/vit_b_16-c867db91.pth',
    aggregation_degrees=(1, 3, 5),
    interval=0.3,
    rescore_windows=(2, 3),
    smooth_sigma=4.0)
custom_hooks = [dict(type='SetScoringHook')]
# 224-px pipeline of the ViT (used by the dataset configs' test loader)
vit_test_pipeline = [
    dict(type='LoadImageFromFile', color_type='color', backend_args=None),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackIMDDInputs')
]
