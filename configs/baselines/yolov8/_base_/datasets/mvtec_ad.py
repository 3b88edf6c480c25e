# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# MVTec AD (Table 4): 73 "<object>/<defect>" classes, boxes from the
# ground-truth masks. The native MVTec AD train split holds defect-free
# images only: train on a split that contains defects.
# Convert first (same files as configs/_base_/datasets/mvtec_ad.py):
#   python data_converters/convert.py mvtec_ad --root data/mvtec_ad \
#       --out-dir data/imdd/mvtec_ad
_base_ = ['./yolov8_coco_data.py']
data_root = 'data/'
img_root = 'mvtec_ad/'
ann_root = 'imdd/mvtec_ad/annotations/'
num_classes = 73  # categories in data/imdd/mvtec_ad/categories.json

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
