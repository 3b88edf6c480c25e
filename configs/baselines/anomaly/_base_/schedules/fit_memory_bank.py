# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# "Training" of memory-bank methods (PatchCore, few-shot CLIPPromptAD): one
# pass over the normal images; train_step only collects features and
# MemoryBankFitHook finalises the bank (coreset) before the checkpoint is
# saved. No optimizer step is ever taken (lr 0 is a formality of the Runner).
# Run single-process (tools/train.py): the bank is not gathered across ranks.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='SGD', lr=0.0, momentum=0.0))
param_scheduler = []
custom_hooks = [dict(type='MemoryBankFitHook')]
