# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# NEU-DET (steel strip, 6 classes, Pascal VOC boxes; seeded train/val/test).
# Convert first:
#   python data_converters/convert.py neu_det --root data/neu_det/ --out-dir data/imdd_coco/neu_det/
_base_ = ['./yolov8_coco_data.py']
img_root = 'data/neu_det/'
ann_root = 'data/imdd_coco/neu_det/'
num_classes = 6  # number of categories in ${ann_root}categories.json

train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            data_prefix=dict(img=img_root),
            ann_file=ann_root + 'annotations/train.json')))
val_dataloader = dict(
    dataset=dict(
        data_prefix=dict(img=img_root),
        ann_file=ann_root + 'annotations/val.json'))
test_dataloader = dict(
    dataset=dict(
        data_prefix=dict(img=img_root),
        ann_file=ann_root + 'annotations/test.json'))
val_evaluator = dict(ann_file=ann_root + 'annotations/val.json')
test_evaluator = dict(ann_file=ann_root + 'annotations/test.json')
