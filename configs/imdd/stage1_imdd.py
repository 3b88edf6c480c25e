# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Stage 1 (paper §4.3, §4.4, §4.7, §11.3, Table 8): text-conditioned SD-1.5
# U-Net trained from random initialisation on IMDD-1M image-caption pairs,
# jointly with the implicit captioner; L = L_diff + 0.3 L_imp.
#
# 8 GPUs x 32 images = 256:
#   bash tools/dist_train.sh configs/imdd/stage1_imdd.py 8
# Other GPU counts: add --auto-scale-lr (linear scaling from 256), or keep
# 256 with gradient accumulation, e.g. 16 images/GPU with --cfg-options
# optim_wrapper.accumulative_counts=2 train_dataloader.batch_size=16.
# Memory: --cfg-options model.gradient_checkpointing=True (§11.4, ~40% less
# activation memory, ~20-30% slower).
#
# The corpus is the one written by data_converters/build_corpus.py
# (data/imdd1m/index.json + shards). Captions are encoded by the frozen
# CLIP ViT-L/14 text tower (768-d, eq. 3); the VAE is SD-1.5's (frozen);
# the captioner's CLIP image tower is ViT-B-16 (512-d, eq. 6). They load
# the paper's pretrained weights from the local caches (Hugging Face hub
# cache, open_clip's cache) or local paths; nothing is downloaded at build
# time, and missing weights fail the build with one message naming them.
# model.allow_random_frozen=True accepts random frozen weights instead.
default_scope = 'mmdet'
custom_imports = dict(imports=['imdd_mm'], allow_failed_imports=False)

resolution = 512
batch_size_per_gpu = 32
num_gpus = 8
max_epochs = 100
warmup_iters = 5000
base_lr = 1e-4
min_lr = 1e-6
gradient_checkpointing = False

# SD-1.5 U-Net layout (= imdd_mm.models.backbones.SD15_UNET_CONFIG), random
# init: He (fan_out) for convs, Xavier-uniform for linears, zero biases.
sd15_unet = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    center_input_sample=False,
    flip_sin_to_cos=True,
    freq_shift=0,
    down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D',
                      'CrossAttnDownBlock2D', 'DownBlock2D'),
    up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D',
                    'CrossAttnUpBlock2D'),
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    downsample_padding=1,
    mid_block_scale_factor=1,
    act_fn='silu',
    norm_num_groups=32,
    norm_eps=1e-5,
    cross_attention_dim=768,
    attention_head_dim=8)

model = dict(
    type='IMDDDiffusionPretrainer',
    unet=dict(config=sd15_unet, init='he_xavier', seed=0),
    # Frozen SD-1.5 VAE: hub id (from the Hugging Face cache) or a local
    # diffusers folder, e.g. model.vae.pretrained=/models/sd15 (with vae/).
    vae=dict(
        pretrained='stable-diffusion-v1-5/stable-diffusion-v1-5',
        subfolder='vae',
        drop_decoder=False),
    # Frozen OpenAI CLIP towers (open_clip tag from its cache, or local
    # .bin/.safetensors files; OpenAI weights build the -quickgelu variant).
    text_encoder=dict(
        type='CLIPTextEncoder', model_name='ViT-L-14', pretrained='openai'),
    captioner=dict(
        type='ImplicitCaptioner',
        model_name='ViT-B-16',
        pretrained='openai',
        in_dim=512,
        hidden_dim=256,
        out_dim=768),
    num_train_timesteps=1000,
    beta_start=1e-4,
    beta_end=0.02,
    beta_schedule='linear',
    caption_prob=0.5,
    diff_loss_weight=1.0,
    imp_loss_weight=0.3,
    # null-condition dropout: 0.0 = the paper's objective (Table 8 has none;
    # with dropout the Table 7 "w/o implicit text embedding" ablation
    # measures too small a drop). Opt in for classifier-free guidance at
    # generation time: --cfg-options model.uncond_prob=0.1
    uncond_prob=0.0,
    null_condition='empty',
    latent_sampling='sample',
    vae_fp32=True,
    allow_random_frozen=False,  # True: accept random frozen networks
    gradient_checkpointing=gradient_checkpointing,
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        bgr_to_rgb=True))

# Table 8 augmentations; the crop comes first so the others run at 512 px.
train_pipeline = [
    dict(type='LoadImageFromFile', color_type='color'),
    dict(
        type='RandomResizedCropImage',
        size=resolution,
        scale=(0.8, 1.0),
        ratio=(3. / 4., 4. / 3.)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='RandomRotateImage', max_angle=15., border_mode='reflect'),
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

data_root = 'data/imdd1m/'
train_dataloader = dict(
    batch_size=batch_size_per_gpu,
    num_workers=16,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='IMDDCorpusDataset',
        data_root=data_root,
        ann_file='index.json',
        with_instances=False,
        filter_cfg=dict(splits=['train'], require_caption=True),
        pipeline=train_pipeline))
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='float16',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW', lr=base_lr, betas=(0.9, 0.999), weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0, norm_type=2))

# 5,000 linear warm-up iterations from 1e-6 to 1e-4, then cosine decay to
# 1e-6 over the 100 epochs (both iteration-based; the cosine is chained
# with the warm-up, so during warm-up lr = warmup(t) * cosine(t), which
# differs from a pure warm-up by < 0.01%).
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
        by_epoch=True,
        begin=0,
        end=max_epochs,
        T_max=max_epochs,
        convert_to_iter_based=True)
]

# lr 1e-4 is for 256 images per step; --auto-scale-lr rescales linearly
auto_scale_lr = dict(enable=False, base_batch_size=256)

# EMA decay 0.9999 every iteration: mmengine's momentum is 1 - decay.
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExponentialMovingAverage',
        momentum=1e-4,
        interval=1,
        update_buffers=False,
        priority=49)
]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=True, interval=1, max_keep_ckpts=3,
        save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # frozen-network provenance in checkpoints (checked by Stage 2)
    frozen_sources=dict(type='FrozenSourcesHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
# different seeds per rank: otherwise every GPU draws the same timesteps and
# noise for its images, which wastes most of the 8-GPU batch's diversity
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='Visualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False

# generation defaults read by tools/generate.py
generation = dict(
    height=resolution,
    width=resolution,
    scheduler='ddim',
    num_inference_steps=50,
    guidance_scale=7.5,
    batch_size=8)
