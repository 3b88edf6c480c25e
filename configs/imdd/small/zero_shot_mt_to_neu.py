# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Zero-shot transfer in miniature (paper Table 12): a small-recipe model
# trained on Magnetic Tile only, tested on NEU-DET's test split with NEU's
# class names given only at test time (test_vocabulary); NEU's boxes are the
# ground truth of the box metrics. Test only:
#   python tools/test.py configs/imdd/small/zero_shot_mt_to_neu.py \
#       work_dirs/small_study/a_n50/time_budget.pth
_base_ = ['./stage2_small.py']
ann_root = 'data/imdd/neu_det/annotations/'
img_root = '../shared/data/neu_det/'
model = dict(test_vocabulary=('crazing', 'inclusion', 'patches',
                              'pitted_surface', 'rolled-in_scale',
                              'scratches'))
val_dataloader = dict(dataset=dict(
    ann_file=ann_root + 'test.json', data_prefix=dict(img=img_root)))
test_dataloader = val_dataloader
