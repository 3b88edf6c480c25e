# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Magnetic Tile (5 defect classes, boxes from the pixel masks; seeded split).
# Convert first:
#   python data_converters/convert.py magnetic_tile --root data/magnetic_tile/ --out-dir data/imdd_coco/magnetic_tile/
_base_ = ['./yolov8_coco_data.py']
img_root = 'data/magnetic_tile/'
ann_root = 'data/imdd_coco/magnetic_tile/'
num_classes = 5  # number of categories in ${ann_root}categories.json

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
