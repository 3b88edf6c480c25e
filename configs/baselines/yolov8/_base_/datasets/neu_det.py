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
val_evaluator = dict(ann_file=data_root + ann_root + 'val.json')
test_evaluator = dict(ann_file=data_root + ann_root + 'test.json')
