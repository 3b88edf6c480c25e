# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Tiny MMSeg config for CPU (tests, quickstart): tiny random U-Net/VAE/CLIP
# image tower, offline MiniLM text encoder, 128 px, a few iterations on
# Magnetic Tile converted by our converter (see _seg_common.py).
#   python tools/train.py configs/imdd/seg/seg_tiny.py   (mmseg scope)
_base_ = ['./_seg_common.py']
default_scope = 'mmseg'
custom_imports = dict(imports=['imdd_mm'], allow_failed_imports=False)

image_size = (128, 128)
text_dim = 384
feat = 32
classes = ('defect-free surface', 'blowhole', 'break', 'crack', 'fray',
           'uneven')

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadIMDDSemSegAnnotations'),
    dict(type='Resize', scale=image_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=False),
    dict(type='LoadIMDDSemSegAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    num_workers=0,
    dataset=dict(metainfo=dict(classes=classes), pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    dataset=dict(metainfo=dict(classes=classes), pipeline=test_pipeline))
test_dataloader = val_dataloader

model = dict(
    # tiny random U-Net/VAE/CLIP image tower, by design (tests, quickstart)
    allow_random_frozen=True,
    backbone=dict(
        unet=dict(
            config=dict(
                sample_size=8,
                in_channels=4,
                out_channels=4,
                flip_sin_to_cos=True,
                freq_shift=0,
                down_block_types=('CrossAttnDownBlock2D',
                                  'CrossAttnDownBlock2D',
                                  'CrossAttnDownBlock2D', 'DownBlock2D'),
                up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D',
                                'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'),
                block_out_channels=(16, 16, 32, 32),
                layers_per_block=1,
                act_fn='silu',
                norm_num_groups=8,
                cross_attention_dim=text_dim,
                attention_head_dim=2)),
        vae=dict(
            _delete_=True,  # not the base's pretrained SD VAE
            config=dict(
                in_channels=3,
                out_channels=3,
                down_block_types=('DownEncoderBlock2D', ) * 4,
                up_block_types=('UpDecoderBlock2D', ) * 4,
                block_out_channels=(8, 16, 16, 16),
                layers_per_block=1,
                act_fn='silu',
                latent_channels=4,
                norm_num_groups=8,
                sample_size=64,
                scaling_factor=0.18215))),
    captioner=dict(
        pretrained=None,  # random tiny tower
        model_name=dict(
            embed_dim=512,
            vision_cfg=dict(
                image_size=32, layers=1, width=32, patch_size=8,
                head_width=16),
            text_cfg=dict(
                context_length=16, vocab_size=49408, width=32, heads=2,
                layers=1)),
        out_dim=text_dim),
    decode_head=dict(
        vocabulary=classes,
        feat_channels=feat,
        out_channels=feat,
        num_queries=10,
        text_encoder=dict(_delete_=True, type='MiniLMTextEncoder'),
        pixel_decoder=dict(norm_cfg=dict(type='GN', num_groups=8)),
        transformer_decoder=dict(
            return_intermediate=True,
            num_layers=3,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=feat, num_heads=4, dropout=0.0,
                    batch_first=True),
                cross_attn_cfg=dict(
                    embed_dims=feat, num_heads=4, dropout=0.0,
                    batch_first=True),
                ffn_cfg=dict(
                    embed_dims=feat,
                    feedforward_channels=64,
                    num_fcs=2,
                    ffn_drop=0.0,
                    act_cfg=dict(type='ReLU', inplace=True))),
            init_cfg=None),
        positional_encoding=dict(num_feats=feat // 2, normalize=True),
        train_cfg=dict(num_points=256)))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0, norm_type=2),
    paramwise_cfg=dict(norm_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
