# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# NEU-DET (boxes only: box-shaped masks) converted by imdd-mm's converter
# (COCO + captions):
#   python data_converters/convert.py neu_det --root data/neu_det \
#       --out-dir data/imdd/neu_det
# -> data/imdd/neu_det/annotations/{train,val,test}.json whose file_name
# is relative to data/neu_det (images are not copied).
# Pipelines, loaders and metrics: ./imdd_instance.py; this file sets the
# folders.
_base_ = './imdd_instance.py'
data_root = 'data/'
ann_root = 'imdd/neu_det/annotations/'
img_root = 'neu_det/'

train_dataloader = dict(
    dataset=dict(
        ann_file=ann_root + 'train.json', data_prefix=dict(img=img_root)))
val_dataloader = dict(
    dataset=dict(
        ann_file=ann_root + 'val.json', data_prefix=dict(img=img_root)))
test_dataloader = dict(
    dataset=dict(
        ann_file=ann_root + 'test.json', data_prefix=dict(img=img_root)))

# imdd-mm's metrics beside COCO's: NEU-DET has boxes only, so Table 3
# (classification) and Table 4 (box mAP, boxes from the annotations).
imdd_metrics = [
    dict(type='IMDDClassificationMetric'),
    dict(type='MaskBoxDetectionMetric', box_mode='mask',
         gt_box_source='boxes'),
]
val_evaluator = [
    dict(_base_.val_evaluator[0],
         ann_file=data_root + ann_root + 'val.json'),
    *imdd_metrics,
]
test_evaluator = [
    dict(_base_.test_evaluator[0],
         ann_file=data_root + ann_root + 'test.json'),
    *imdd_metrics,
]
