# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# YOLOv8 training schedule of §11.2: 300 epochs, batch 16 (4 GPUs x 4),
# SGD momentum 0.937 (Nesterov), weight decay 5e-4 (not on BN / biases),
# lr 0.01 with 3 warm-up epochs (lr from 0.001x, momentum from 0.8) then
# cosine decay to 1e-5 (x0.001), AMP, EMA of the weights, mosaic/mixup
# switched off for the last 10 epochs, early stopping with patience 50.
_base_ = ['mmdet::_base_/default_runtime.py']
custom_imports = dict(imports=['imdd_mm'], allow_failed_imports=False)

max_epochs = 300
warmup_epochs = 3
close_mosaic_epochs = 10
base_lr = 0.01
val_interval = 1

train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs,
    val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='SGD', lr=base_lr, momentum=0.937, weight_decay=5e-4,
        nesterov=True),
    clip_grad=dict(max_norm=10.0),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))

param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=True, begin=0,
        end=warmup_epochs, convert_to_iter_based=True),
    dict(
        type='LinearMomentum', start_factor=0.8 / 0.937, by_epoch=True,
        begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR', eta_min_ratio=0.001, by_epoch=True,
        begin=warmup_epochs, end=max_epochs,
        T_max=max_epochs - warmup_epochs, convert_to_iter_based=True),
]

default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', interval=10, max_keep_ckpts=3,
        save_best='coco/bbox_mAP', rule='greater'),
    logger=dict(type='LoggerHook', interval=50))

custom_hooks = [
    dict(
        type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001,
        update_buffers=True, priority=49),
    # closes Mosaic and MixUp of the MultiImageMixDataset for the last
    # epochs (it also sets ``bbox_head.use_l1``, which YOLOv8Head ignores)
    dict(
        type='YOLOXModeSwitchHook', num_last_epochs=close_mosaic_epochs,
        skip_type_keys=('Mosaic', 'YOLOv8MixUp'), priority=48),
    dict(
        type='EarlyStoppingHook', monitor='coco/bbox_mAP', rule='greater',
        min_delta=0.0, patience=50),
]

# The losses are already multiplied by the global batch size (as in the
# reference implementation), so the gradient grows with the batch: keep
# lr 0.01 for any batch size and leave auto-scaling off. base_batch_size
# documents the paper's batch (4 GPUs x 4 images, or 8 x 2).
auto_scale_lr = dict(enable=False, base_batch_size=16)
