# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# VisA: boxes from the ground-truth masks.
# Convert first:
#   python data_converters/convert.py visa --root data/visa/ --out-dir data/imdd_coco/visa/
_base_ = ['./yolov8_coco_data.py']
img_root = 'data/visa/'
ann_root = 'data/imdd_coco/visa/'
num_classes = 12  # number of categories in ${ann_root}categories.json

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
