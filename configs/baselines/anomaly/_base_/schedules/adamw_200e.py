# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Schedule of the reconstruction baselines trained from scratch on normal
# images (DDAD-style, DMAD-style). Paper §11.2 gives 200 epochs per category
# for "DMAD". DMAD's official MVTec code trains its (different,
# feature-space) network with AdamW lr 0.005, betas (0.5, 0.999), cosine
# annealing, 400 epochs, batch 8; that schedule is not transferred to our
# image-space DMAD-style network (DMAD-PPDM-style uses it:
# adamw_400e_cosine.py). FAIR-style uses adam_800e.py (FAIR's own).
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=200, val_interval=200)
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.0),
    clip_grad=dict(max_norm=1.0))
param_scheduler = []
auto_scale_lr = dict(enable=False, base_batch_size=32)
