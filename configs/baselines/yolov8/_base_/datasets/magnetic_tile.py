# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Magnetic Tile (5 defect classes, boxes from the pixel masks; seeded split).
# Convert first (same files as configs/_base_/datasets/magnetic_tile.py):
#   python data_converters/convert.py magnetic_tile --root data/magnetic_tile \
#       --out-dir data/imdd/magnetic_tile
_base_ = ['./yolov8_coco_data.py']
data_root = 'data/'
img_root = 'magnetic_tile/'
ann_root = 'imdd/magnetic_tile/annotations/'
num_classes = 5  # categories in data/imdd/magnetic_tile/categories.json

train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            data_root=data_root,
            data_prefix=dict(img=img_root),
            ann_file=ann_root + 'train.json')))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        data_prefix=dict(img=img_root),
        ann_file=ann_root + 'val.json'))
test_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        data_prefix=dict(img=img_root),
        ann_file=ann_root + 'test.json'))
backend_args = None
val_evaluator = [
    # mAP@[.5:.95], mAP@0.5, mAP@0.75 from pycocotools on the COCO file
    dict(
        type='CocoMetric',
        ann_file=data_root + ann_root + 'val.json',
        metric='bbox',
        classwise=True,
        format_only=False,
        backend_args=backend_args),
    # Table 4 side by side with ours: mAP@0.5 / 0.75 and average IoU
    # (our detector derives its boxes from masks, box_mode='mask'; the COCO
    # boxes of mask sources are the masks' boxes, i.e. the same convention)
    dict(
        type='MaskBoxDetectionMetric',
        box_mode='mask',
        gt_box_source='boxes',
        pred_box_source='boxes'),
]
test_evaluator = [
    # mAP@[.5:.95], mAP@0.5, mAP@0.75 from pycocotools on the COCO file
    dict(
        type='CocoMetric',
        ann_file=data_root + ann_root + 'test.json',
        metric='bbox',
        classwise=True,
        format_only=False,
        backend_args=backend_args),
    # Table 4 side by side with ours: mAP@0.5 / 0.75 and average IoU
    # (our detector derives its boxes from masks, box_mode='mask'; the COCO
    # boxes of mask sources are the masks' boxes, i.e. the same convention)
    dict(
        type='MaskBoxDetectionMetric',
        box_mode='mask',
        gt_box_source='boxes',
        pred_box_source='boxes'),
]
