# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# MVTec AD, one object category per run (Table 6 averages the 15 runs).
# Convert first:
#   python data_converters/convert.py mvtec_ad --root data/mvtec_ad/ --out-dir data/imdd/mvtec_ad/
# Fit: train split (only `good` images); test: test split with masks.
# Other categories: --cfg-options category=cable (tools/train.py and
#   tools/test.py resolve '${category}' when the run starts; a value
#   computed from `category` in a config would stay at the default).
_base_ = ['./anomaly_coco.py']
img_root = 'data/mvtec_ad/'
ann_root = 'data/imdd/mvtec_ad/'
category = 'bottle'
categories = ('bottle', 'cable', 'capsule', 'carpet', 'grid', 'hazelnut',
              'leather', 'metal_nut', 'pill', 'screw', 'tile', 'toothbrush',
              'transistor', 'wood', 'zipper')

train_dataloader = dict(
    dataset=dict(
        data_prefix=dict(img=img_root),
        ann_file=ann_root + 'annotations/train.json',
        file_prefix='${category}/'))
test_dataloader = dict(
    dataset=dict(
        data_prefix=dict(img=img_root),
        ann_file=ann_root + 'annotations/test.json',
        file_prefix='${category}/'))
