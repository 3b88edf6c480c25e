# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Schedule of the reconstruction baselines trained from scratch on normal
# images (DDAD-style, DMAD-style, FAIR-style). Paper §11.2 gives 200 epochs
# per category for "DMAD"; the DMAD and FAIR papers' own schedules are not
# known to us, so this one is used for all three.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=200, val_interval=200)
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.0),
    clip_grad=dict(max_norm=1.0))
param_scheduler = []
auto_scale_lr = dict(enable=False, base_batch_size=32)
