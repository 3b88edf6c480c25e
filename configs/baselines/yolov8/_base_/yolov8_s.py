# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# YOLOv8-s: 11.17M parameters for 80 classes (deepen 0.33, widen 0.5).
_base_ = ['./yolov8_m.py']
deepen_factor = 0.33
widen_factor = 0.5
last_stage_out_channels = 1024
model = dict(
    backbone=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        last_stage_out_channels=last_stage_out_channels),
    neck=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        last_stage_out_channels=last_stage_out_channels),
    bbox_head=dict(
        widen_factor=widen_factor,
        last_stage_out_channels=last_stage_out_channels))
