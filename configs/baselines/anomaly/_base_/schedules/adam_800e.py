# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# FAIR's schedule (official code github.com/liutongkun/FAIR, train.py and
# README: Adam, lr 1e-4, no weight decay, batch 8, 800 epochs, learning rate
# x0.2 at 80 % and 90 % of the epochs), per category.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=800, val_interval=800)
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-4, weight_decay=0.0))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[640, 720],
         gamma=0.2)
]
auto_scale_lr = dict(enable=False, base_batch_size=8)
