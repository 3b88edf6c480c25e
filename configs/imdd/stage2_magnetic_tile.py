# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Stage 2 (paper §4.7, Table 9) on magnetic_tile: frozen diffusion features (t = 50)
# + open-vocabulary Mask2Former, 50 epochs, 2 images/GPU x 8 GPUs.
#   bash tools/dist_train.sh configs/imdd/stage2_magnetic_tile.py 8 \
#       --cfg-options model.stage1_checkpoint=work_dirs/stage1_imdd/epoch_100.pth
# Table 7 ablations: configs/imdd/ablations/.
_base_ = [
    '../_base_/models/imdd_mask2former.py',
    '../_base_/datasets/magnetic_tile.py',
    '../_base_/schedules/stage2_50e.py',
    '../_base_/default_runtime.py',
]
custom_imports = dict(imports=['imdd_mm'], allow_failed_imports=False)
default_scope = 'mmdet'
