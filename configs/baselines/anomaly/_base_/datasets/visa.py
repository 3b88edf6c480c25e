# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# VisA, one object category per run (the 12 categories, 1-class split).
# Convert first:
#   python data_converters/convert.py visa --root data/visa/ --out-dir data/imdd/visa/
# Fit: normal images of the train split; test: test split with masks.
# Other categories: --cfg-options category=cable (tools/train.py and
#   tools/test.py resolve '${category}' when the run starts; a value
#   computed from `category` in a config would stay at the default).
_base_ = ['./anomaly_coco.py']
img_root = 'data/visa/'
ann_root = 'data/imdd/visa/'
category = 'candle'
categories = ('candle', 'capsules', 'cashew', 'chewinggum', 'fryum',
              'macaroni1', 'macaroni2', 'pcb1', 'pcb2', 'pcb3', 'pcb4',
              'pipe_fryum')

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
