# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Worked example: Stage 2 on your own factory data, with no new code.
#
# 1. Your images, one folder per defect class, masks in a parallel tree:
#      data/gear_line/images/{train,val,test}/{good,dent,burr,rust}/*.png
#      data/gear_line/masks/{train,val,test}/{dent,burr,rust}/*.png
#    and data/gear_line/dataset.yaml (the converter config):
#      source: gear_line
#      license: internal
#      product: gear
#      material: steel
#      domain: mechanical parts
#      image_dir: images
#      mask_dir: masks
#      normal_classes: [good]
# 2. Convert (COCO + structured captions; images are not copied):
#      python data_converters/convert.py folder --root data/gear_line \
#          --config data/gear_line/dataset.yaml --out-dir data/imdd/gear_line
# 3. Train and test:
#      tools/dist_train.sh configs/imdd/examples/stage2_my_factory.py 8 \
#          --cfg-options model.stage1_checkpoint=work_dirs/stage1_imdd/epoch_100.pth
#      python tools/test.py configs/imdd/examples/stage2_my_factory.py \
#          work_dirs/stage2_my_factory/epoch_50.pth --report gear_line.html
#    Name classes never seen in training at test time with
#      --cfg-options "model.test_vocabulary=['dent','burr','rust','crack']"
_base_ = ['../stage2_magnetic_tile.py']

data_root = 'data/'
ann_root = 'imdd/gear_line/annotations/'
img_root = 'gear_line/'

train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file=ann_root + 'train.json',
        data_prefix=dict(img=img_root)))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file=ann_root + 'val.json',
        data_prefix=dict(img=img_root)))
test_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file=ann_root + 'test.json',
        data_prefix=dict(img=img_root)))
# COCO's metric reads its own copy of the ground truth; the imdd-mm metrics
# (Tables 3-6) read it from the samples.
imdd_metrics = [
    dict(type='IMDDClassificationMetric'),
    dict(type='MaskBoxDetectionMetric', box_mode='mask'),
    dict(type='DefectSegMetric'),
    dict(type='AnomalyMetric'),
]
val_evaluator = [
    dict(type='CocoMetric', ann_file=data_root + ann_root + 'val.json',
         metric=['bbox', 'segm']), *imdd_metrics
]
test_evaluator = [
    dict(type='CocoMetric', ann_file=data_root + ann_root + 'test.json',
         metric=['bbox', 'segm']), *imdd_metrics
]
