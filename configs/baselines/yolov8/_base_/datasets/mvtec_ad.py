# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# MVTec AD (Table 4): boxes from the ground-truth masks.
# Convert first:
#   python data_converters/convert.py mvtec_ad --root data/mvtec_ad/ --out-dir data/imdd_coco/mvtec_ad/
_base_ = ['./yolov8_coco_data.py']
img_root = 'data/mvtec_ad/'
ann_root = 'data/imdd_coco/mvtec_ad/'
num_classes = 73  # number of categories in ${ann_root}categories.json

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
