# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Stage-2 mask-generator fine-tuning, paper Table 9: AdamW lr 5e-5, weight
# decay 1e-4, betas (0.9, 0.999), 16 images per step (2 per GPU x 8 GPUs),
# 500 linear warm-up iterations, polynomial decay (power 0.9), 50 epochs,
# gradient clipping max-norm 0.01, FP16 mixed precision.
# On another number of GPUs pass --auto-scale-lr to scale the lr linearly.
max_epochs = 50

optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='float16',
    optimizer=dict(
        type='AdamW', lr=5e-5, weight_decay=1e-4, betas=(0.9, 0.999),
        eps=1e-8),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    # paramwise_cfg also makes mmengine skip requires_grad=False parameters
    paramwise_cfg=dict(
        custom_keys=dict(
            query_embed=dict(lr_mult=1.0, decay_mult=0.0),
            query_feat=dict(lr_mult=1.0, decay_mult=0.0),
            level_embed=dict(lr_mult=1.0, decay_mult=0.0),
            void_embedding=dict(lr_mult=1.0, decay_mult=0.0),
            logit_scale=dict(lr_mult=1.0, decay_mult=0.0)),
        norm_decay_mult=0.0))

param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
        end=500),
    dict(
        type='PolyLR',
        power=0.9,
        eta_min=0.0,
        begin=0,
        end=max_epochs,
        by_epoch=True,
        convert_to_iter_based=True),
]

train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

auto_scale_lr = dict(enable=False, base_batch_size=16)
