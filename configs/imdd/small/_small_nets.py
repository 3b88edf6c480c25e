# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Network shapes shared by the CPU-scale ("small") Stage-1 and Stage-2
# configs: a 4-level U-Net (32-64-128-128 channels, cross-attention 384 =
# MiniLM) over an 8-fold VAE whose stride-2/4 encoder maps feed the head
# (thin defects). Random init is seeded (weights identical on every rank and
# rerun); Stage 2 loads the Stage-1 U-Net, the VAE stays the seeded random
# one in both stages (nothing is downloaded on this CPU machine).
small_unet = dict(
    config=dict(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        flip_sin_to_cos=True,
        freq_shift=0,
        down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D',
                          'CrossAttnDownBlock2D', 'DownBlock2D'),
        up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D',
                        'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'),
        block_out_channels=(32, 64, 128, 128),
        layers_per_block=1,
        act_fn='silu',
        norm_num_groups=16,
        cross_attention_dim=384,
        attention_head_dim=8),
    init='he_xavier',
    seed=0)
small_vae = dict(
    config=dict(
        in_channels=3,
        out_channels=3,
        down_block_types=('DownEncoderBlock2D', ) * 4,
        up_block_types=('UpDecoderBlock2D', ) * 4,
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=1,
        act_fn='silu',
        latent_channels=4,
        norm_num_groups=8,
        sample_size=128,
        scaling_factor=0.18215),
    seed=0)
small_clip = dict(
    embed_dim=512,
    vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=8,
                    head_width=16),
    text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2,
                  layers=1))
