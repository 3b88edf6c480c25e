# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# YOLOv8-s on neu_det (§11.2 settings; Table 4 uses YOLOv8-m).
#   tools/dist_train.sh configs/baselines/yolov8/yolov8_s_neu_det.py 4
_base_ = [
    './_base_/yolov8_s.py', './_base_/datasets/neu_det.py',
    './_base_/schedule_sgd_cosine_300e.py'
]
model = dict(bbox_head=dict(num_classes={{_base_.num_classes}}))
