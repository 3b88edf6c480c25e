# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# YOLOv8-m on magnetic_tile (§11.2 settings; Table 4 uses YOLOv8-m).
#   tools/dist_train.sh configs/baselines/yolov8/yolov8_m_magnetic_tile.py 4
_base_ = [
    './_base_/yolov8_m.py', './_base_/datasets/magnetic_tile.py',
    './_base_/schedule_sgd_cosine_300e.py'
]
model = dict(bbox_head=dict(num_classes={{_base_.num_classes}}))
