# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# SimpleNet schedule. Paper §11.2: 150 epochs, batch size 32, lr 1e-3.
# Original SimpleNet: adaptor AdamW 1e-4, discriminator 2e-4 (lr_mult 2).
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=150, val_interval=150)
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-5),
    paramwise_cfg=dict(custom_keys=dict(discriminator=dict(lr_mult=2.0))))
param_scheduler = []
auto_scale_lr = dict(enable=False, base_batch_size=32)
