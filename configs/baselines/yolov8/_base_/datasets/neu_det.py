# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# NEU-DET (steel strip, 6 classes, Pascal VOC boxes; seeded train/val/test).
# Convert first (same files as configs/_base_/datasets/neu_det.py):
#   python data_converters/convert.py neu_det --root data/neu_det \
#       --out-dir data/imdd/neu_det
_base_ = ['./yolov8_coco_data.py']
data_root = 'data/'
img_root = 'neu_det/'
ann_root = 'imdd/neu_det/annotations/'
num_classes = 6  # categories in data/imdd/neu_det/categories.json

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
