# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# MVTec AD converted by imdd-mm's converter (COCO + captions):
#   python data_converters/convert.py mvtec_ad --root data/mvtec_ad \
#       --out-dir data/imdd/mvtec_ad
# -> data/imdd/mvtec_ad/annotations/{train,val,test}.json whose file_name
# is relative to data/mvtec_ad (images are not copied).
# Pipelines, loaders and metrics: ./imdd_instance.py; this file sets the
# folders.
_base_ = './imdd_instance.py'
data_root = 'data/'
ann_root = 'imdd/mvtec_ad/annotations/'
img_root = 'mvtec_ad/'

train_dataloader = dict(
    dataset=dict(
        ann_file=ann_root + 'train.json', data_prefix=dict(img=img_root)))
val_dataloader = dict(
    dataset=dict(
        ann_file=ann_root + 'val.json', data_prefix=dict(img=img_root)))
test_dataloader = dict(
    dataset=dict(
        ann_file=ann_root + 'test.json', data_prefix=dict(img=img_root)))
val_evaluator = [
    dict(_base_.val_evaluator[0],
         ann_file=data_root + ann_root + 'val.json'),
    *_base_.imdd_metrics,
]
test_evaluator = [
    dict(_base_.test_evaluator[0],
         ann_file=data_root + ann_root + 'test.json'),
    *_base_.imdd_metrics,
]
