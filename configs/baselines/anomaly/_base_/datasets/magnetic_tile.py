# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Magnetic Tile: the MT_Free images (is_normal) of the converter's seeded
# train split are the normal fitting set; the test split holds MT_Free and
# the five defect classes with their pixel masks.
# Convert first:
#   python data_converters/convert.py magnetic_tile --root data/magnetic_tile/ --out-dir data/imdd/magnetic_tile/
_base_ = ['./anomaly_coco.py']
img_root = 'data/magnetic_tile/'
ann_root = 'data/imdd/magnetic_tile/'

train_dataloader = dict(
    dataset=dict(
        data_prefix=dict(img=img_root),
        ann_file=ann_root + 'annotations/train.json'))
test_dataloader = dict(
    dataset=dict(
        data_prefix=dict(img=img_root),
        ann_file=ann_root + 'annotations/test.json'))
