# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Small study run (b) the same head on the random U-Net,
# trained for a fixed budget of process CPU time (TimeBudgetHook; the study
# runner sets custom_hooks.1.seconds) instead of a fixed number of
# iterations; see
# study_spec.py and tools/misc/run_small_study.sh.
_base_ = ['./stage2_small_random_unet.py']
train_cfg = dict(max_iters=10**6)
custom_hooks = [
    dict(type='VocabularyHook'),
    dict(type='TimeBudgetHook', seconds=240, clock='cpu'),
]
