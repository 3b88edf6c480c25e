# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# PatchCore (WRN-50, coreset 10 %) on VisA.
#   python tools/train.py THIS_CONFIG   (one pass: fills the memory bank)
#   python tools/test.py THIS_CONFIG work_dirs/.../epoch_1.pth
_base_ = [
    './_base_/models/patchcore_wrn50.py',
    './_base_/datasets/visa.py',
    './_base_/schedules/fit_memory_bank.py',
    './_base_/default_runtime.py',
]
train_dataloader = dict(batch_size=8)
