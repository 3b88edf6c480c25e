# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Stage 2 on mvtec_ad fine-tuned on 200 defect images per class (paper Table 4,
# §5.3.2), the same split files YOLOv8 reads
# (configs/baselines/yolov8/_base_/datasets/mvtec_ad.py):
#   python data_converters/few_shot_split.py data/imdd/mvtec_ad/annotations \
#       --shots 200
#   bash tools/dist_train.sh configs/imdd/stage2_mvtec_200shot.py 8 \
#       --cfg-options model.stage1_checkpoint=work_dirs/stage1_imdd/epoch_100.pth
# The tables count the training samples from train_200shot.json (classes
# with fewer images have fewer; see its info.few_shot.per_class).
_base_ = ['./stage2_mvtec.py']
shots_ann_root = 'imdd/mvtec_ad/annotations/'
train_dataloader = dict(
    dataset=dict(ann_file=shots_ann_root + 'train_200shot.json'))
val_dataloader = dict(
    dataset=dict(ann_file=shots_ann_root + 'val_200shot.json'))
test_dataloader = dict(
    dataset=dict(ann_file=shots_ann_root + 'test_200shot.json'))
# the base's evaluators (COCO + imdd-mm metrics) on the split's files
val_evaluator = [
    dict(_base_.val_evaluator[0],
         ann_file='data/' + shots_ann_root + 'val_200shot.json'),
    *_base_.val_evaluator[1:],
]
test_evaluator = [
    dict(_base_.test_evaluator[0],
         ann_file='data/' + shots_ann_root + 'test_200shot.json'),
    *_base_.test_evaluator[1:],
]
