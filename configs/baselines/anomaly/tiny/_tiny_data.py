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
# Loaders of the tiny configs: `train_dataloader = {{_base_.tiny_train_dataloader}}`
# (merged into the full config's loader; a config with another batch size
# writes its own).
tiny_train_dataloader = dict(
    batch_size=3, num_workers=0, persistent_workers=False,
    dataset=dict(pipeline=tiny_train_pipeline))
tiny_test_dataloader = dict(
    batch_size=3, num_workers=0, persistent_workers=False,
    dataset=dict(pipeline=tiny_test_pipeline))
