# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# DMAD-PPDM's schedule (official code github.com/FlappyPeggy/DMAD,
# DMAD-PPDM/Train_mvtec.py): AdamW lr 0.005, betas (0.5, 0.999), PyTorch's
# default weight decay 0.01, cosine annealing over 400 epochs (stepped per
# epoch, to 0), batch 8, no gradient clipping; per category.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=400, val_interval=400)
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.005, betas=(0.5, 0.999),
                   weight_decay=0.01))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=400,
         T_max=400, eta_min=0.0)
]
auto_scale_lr = dict(enable=False, base_batch_size=8)
