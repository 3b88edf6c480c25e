# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# PromptAD schedule. Paper §11.2: 4-shot, 50 epochs, AdamW lr 1e-4; the
# memory of the few shots is finalised after every epoch.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=50, val_interval=50)
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4,
                                        weight_decay=0.0))
param_scheduler = []
custom_hooks = [dict(type='MemoryBankFitHook')]
