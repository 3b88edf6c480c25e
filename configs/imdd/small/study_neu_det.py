# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# The NEU-DET in-domain reference of the zero-shot study, trained for the
# same CPU-time budget as the study runs (TimeBudgetHook):
#   python tools/train.py configs/imdd/small/study_neu_det.py \
#       --work-dir work_dirs/small_study/neu_det
_base_ = ['./stage2_small_neu_det.py']
train_cfg = dict(max_iters=10**6)
custom_hooks = [
    dict(type='VocabularyHook'),
    dict(type='TimeBudgetHook', seconds=240, clock='cpu'),
]
