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
            data_prefix=dict(img=img_root),
            ann_file=ann_root + 'train.json')))
val_dataloader = dict(
    dataset=dict(
        data_prefix=dict(img=img_root), ann_file=ann_root + 'val.json'))
test_dataloader = dict(
    dataset=dict(
        data_prefix=dict(img=img_root), ann_file=ann_root + 'test.json'))
# the base's evaluators (COCO bbox AP + mask-derived box metrics) on this
# dataset's files
val_evaluator = [
    dict(_base_.val_evaluator[0],
         ann_file=data_root + ann_root + 'val.json'),
    *_base_.val_evaluator[1:],
]
test_evaluator = [
    dict(_base_.test_evaluator[0],
         ann_file=data_root + ann_root + 'test.json'),
    *_base_.test_evaluator[1:],
]
