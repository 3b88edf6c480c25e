# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Our Stage-2 model in Table 6's per-category protocol, like the baselines:
# trained on one category's images of the 200-per-class split
# (data_converters/few_shot_split.py --shots 200) and scored by the same
# AnomalyMetric on that category's test images (test_200shot.json: the
# native test split without the drawn training images; the baselines are
# tested on the same file in table6_visa.yaml).
#   python tools/train.py THIS_CONFIG --cfg-options category=pcb1
#   python tools/test.py THIS_CONFIG CKPT --cfg-options category=pcb1
_base_ = ['../../../imdd/stage2_visa_200shot.py']
category = 'candle'
categories = ('candle', 'capsules', 'cashew', 'chewinggum', 'fryum',
              'macaroni1', 'macaroni2', 'pcb1', 'pcb2', 'pcb3', 'pcb4',
              'pipe_fryum')
train_dataloader = dict(
    dataset=dict(type='AnomalyCocoDataset', file_prefix='${category}/'))
test_dataloader = dict(
    dataset=dict(type='AnomalyCocoDataset', file_prefix='${category}/'))
# no validation inside a per-category run (the COCO val file spans all
# categories)
val_dataloader = None
val_evaluator = None
val_cfg = None
test_evaluator = dict(_delete_=True, type='AnomalyMetric')
