# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Training-free methods (MutualScoring, zero-shot CLIPPromptAD): test only;
# the weights come from the local backbone files named in the model config
# (configs built on this also set train_dataloader = None).
train_cfg = None
optim_wrapper = None
param_scheduler = None
test_cfg = dict(type='TestLoop')
