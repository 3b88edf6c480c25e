# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# VisA: 12 "<object>/anomaly" classes, boxes from the ground-truth masks.
# With split_csv/1cls.csv the train split is defect-free: train on a split
# that contains defects.
# Convert first (same files as configs/_base_/datasets/visa.py):
#   python data_converters/convert.py visa --root data/visa \
#       --out-dir data/imdd/visa
_base_ = ['./yolov8_coco_data.py']
data_root = 'data/'
img_root = 'visa/'
ann_root = 'imdd/visa/annotations/'
# Table 4: YOLOv8 trains on 200 defect images per class drawn from the
# pooled converter output, tested on the disjoint rest:
#   python data_converters/few_shot_split.py data/imdd/visa/annotations \
#       --shots 200
# (-> train_200shot.json / val_200shot.json / test_200shot.json). Classes
# with fewer images give at most half of them to train + val (the split
# file's info.few_shot.per_class has the counts). few_shot_suffix = ''
# uses the converter's native files.
few_shot_suffix = '_200shot'
num_classes = 12  # categories in data/imdd/visa/categories.json

train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            data_root=data_root,
            data_prefix=dict(img=img_root),
            ann_file=ann_root + f'train{few_shot_suffix}.json')))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        data_prefix=dict(img=img_root),
        ann_file=ann_root + f'val{few_shot_suffix}.json'))
test_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        data_prefix=dict(img=img_root),
        ann_file=ann_root + f'test{few_shot_suffix}.json'))
backend_args = None
val_evaluator = [
    # mAP@[.5:.95], mAP@0.5, mAP@0.75 from pycocotools on the COCO file
    dict(
        type='CocoMetric',
        ann_file=data_root + ann_root + f'val{few_shot_suffix}.json',
        metric='bbox',
        classwise=True,
        format_only=False,
        backend_args=backend_args),
    # Table 4 side by side with ours: mAP@0.5 / 0.75 and average IoU
    # (our detector derives its boxes from masks, box_mode='mask'; the COCO
    # boxes of mask sources are the masks' boxes, i.e. the same convention)
    dict(
        type='MaskBoxDetectionMetric',
        box_mode='mask',
        gt_box_source='boxes',
        pred_box_source='boxes'),
]
test_evaluator = [
    # mAP@[.5:.95], mAP@0.5, mAP@0.75 from pycocotools on the COCO file
    dict(
        type='CocoMetric',
        ann_file=data_root + ann_root + f'test{few_shot_suffix}.json',
        metric='bbox',
        classwise=True,
        format_only=False,
        backend_args=backend_args),
    # Table 4 side by side with ours: mAP@0.5 / 0.75 and average IoU
    # (our detector derives its boxes from masks, box_mode='mask'; the COCO
    # boxes of mask sources are the masks' boxes, i.e. the same convention)
    dict(
        type='MaskBoxDetectionMetric',
        box_mode='mask',
        gt_box_source='boxes',
        pred_box_source='boxes'),
]
