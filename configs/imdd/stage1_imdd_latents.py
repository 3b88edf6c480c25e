# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Stage 1 from precomputed inputs: first run
#   python tools/misc/precompute_stage1_latents.py \
#       configs/imdd/stage1_imdd.py data/imdd1m_latents --device cuda
# which stores, once per image, the frozen VAE's posterior moments, the CLIP
# caption embedding and the captioner's CLIP image embedding. Training then
# runs only the U-Net and the captioner MLP (latents are still sampled from
# the stored posterior every step).
# Augmentations are limited to flips of the latent grid: Table 8's random
# resized crop, rotation and colour jitter act on pixels before the frozen
# encoders and are NOT applied in this mode (and the CLIP image embedding is
# that of the unflipped image).
_base_ = ['./stage1_imdd.py']

model = dict(
    input_type='latent',
    data_preprocessor=dict(_delete_=True, type='BaseDataPreprocessor'))

train_dataloader = dict(
    num_workers=8,
    dataset=dict(
        _delete_=True,
        type='LatentCaptionDataset',
        data_root='data/imdd1m_latents/',
        ann_file='index.json',
        pipeline=[
            dict(type='RandomFlipLatent', hflip_prob=0.5, vflip_prob=0.5),
            dict(type='PackLatentInputs')
        ]))
