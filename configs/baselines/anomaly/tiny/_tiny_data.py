# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# 64-px CPU data settings shared by the tiny anomaly configs (tests, smoke
# runs). Paths point at a converter output; tests override them.
tiny_train_pipeline = [
    dict(type='LoadImageFromFile', color_type='color', backend_args=None),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='PackIMDDInputs')
]
tiny_test_pipeline = [
    dict(type='LoadImageFromFile', color_type='color', backend_args=None),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackIMDDInputs')
]
