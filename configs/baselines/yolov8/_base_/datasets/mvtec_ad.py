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
# Table 4: YOLOv8 trains on 200 defect images per class drawn from the
# pooled converter output, tested on the disjoint rest:
#   python data_converters/few_shot_split.py data/imdd/mvtec_ad/annotations \
#       --shots 200
# (-> train_200shot.json / val_200shot.json / test_200shot.json). Classes
# with fewer images give at most half of them to train + val (the split
# file's info.few_shot.per_class has the counts). few_shot_suffix = ''
# uses the converter's native files.
few_shot_suffix = '_200shot'
num_classes = 73  # categories in data/imdd/mvtec_ad/categories.json

train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            data_prefix=dict(img=img_root),
            ann_file=ann_root + f'train{few_shot_suffix}.json')))
val_dataloader = dict(
    dataset=dict(
        data_prefix=dict(img=img_root),
        ann_file=ann_root + f'val{few_shot_suffix}.json'))
test_dataloader = dict(
    dataset=dict(
        data_prefix=dict(img=img_root),
        ann_file=ann_root + f'test{few_shot_suffix}.json'))
# the base's evaluators (COCO bbox AP + mask-derived box metrics) on this
# dataset's files
val_evaluator = [
    dict(_base_.val_evaluator[0],
         ann_file=data_root + ann_root + f'val{few_shot_suffix}.json'),
    *_base_.val_evaluator[1:],
]
test_evaluator = [
    dict(_base_.test_evaluator[0],
         ann_file=data_root + ann_root + f'test{few_shot_suffix}.json'),
    *_base_.test_evaluator[1:],
]
