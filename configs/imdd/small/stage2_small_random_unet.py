# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Ablation (b) of the small study, Table 7's "w/o diffusion pretraining" in
# miniature: the same frozen path and head as stage2_small.py, but the U-Net
# and the captioner MLP are the seeded *random* initialisation (no Stage-1
# checkpoint is loaded). Everything else (VAE, data, schedule) is identical.
_base_ = ['./stage2_small.py']
model = dict(stage1_checkpoint=None)
