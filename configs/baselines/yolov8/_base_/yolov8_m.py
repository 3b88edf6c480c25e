# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# YOLOv8-m model (§11.2): 25.9M parameters for 80 classes
# (deepen 0.67, widen 0.75, last stage capped at 768 -> 576 channels).
# n / s: see yolov8_n.py / yolov8_s.py (they override the three factors).
deepen_factor = 0.67
widen_factor = 0.75
last_stage_out_channels = 768

model = dict(
    type='YOLOv8Detector',
    # YOLOv8's own normalisation: RGB in [0, 1] (not the [-1, 1] of the
    # IMDD detector); letterboxed images are already 640 x 640.
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[0., 0., 0.],
        std=[255., 255., 255.],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_value=114 / 255),
    backbone=dict(
        type='YOLOv8CSPDarknet',
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        last_stage_out_channels=last_stage_out_channels,
        out_indices=(2, 3, 4)),
    neck=dict(
        type='YOLOv8PAFPN',
        in_channels=(256, 512, 1024),
        out_channels=(256, 512, 1024),
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        last_stage_out_channels=last_stage_out_channels),
    bbox_head=dict(
        type='YOLOv8Head',
        num_classes=80,  # set by the top-level config
        in_channels=(256, 512, 1024),
        widen_factor=widen_factor,
        last_stage_out_channels=last_stage_out_channels,
        featmap_strides=(8, 16, 32),
        reg_max=16,
        # BCE 0.5 + CIoU 7.5 + DFL 1.5, each / sum of the soft targets,
        # times the global batch size (reference behaviour).
        loss_cls=dict(
            type='CrossEntropyLoss',
            use_sigmoid=True,
            reduction='mean',
            loss_weight=0.5),
        loss_bbox=dict(
            type='CIoULoss', eps=1e-7, reduction='mean', loss_weight=7.5),
        loss_dfl=dict(
            type='DistributionFocalLoss', reduction='mean', loss_weight=1.5),
        loss_scale_by_batch=True),
    train_cfg=dict(
        assigner=dict(
            type='YOLOv8TaskAlignedAssigner', topk=10, alpha=0.5,
            beta=6.0)),
    test_cfg=dict(
        multi_label=True,
        score_thr=0.001,
        nms_pre=30000,
        nms=dict(type='nms', iou_threshold=0.7),
        max_per_img=300))
