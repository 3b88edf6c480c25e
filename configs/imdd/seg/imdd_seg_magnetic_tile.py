# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Full-size MMSeg path: frozen SD-1.5-shaped diffusion backbone + implicit
# captioner + open-vocabulary Mask2Former decode head, Table 9 schedule
# (iteration based), semantic segmentation of Magnetic Tile scored by mmseg's
# IoUMetric.  bash tools/dist_train.sh configs/imdd/seg/imdd_seg_magnetic_tile.py 8
# (opt in: --cfg-options model.stage1_checkpoint=<stage-1 checkpoint>)
_base_ = ['./_seg_common.py']
default_scope = 'mmseg'
custom_imports = dict(imports=['imdd_mm'], allow_failed_imports=False)

# label 0 = defect-free surface; Magnetic Tile's categories follow
classes = ('defect-free surface', 'blowhole', 'break', 'crack', 'fray',
           'uneven')
train_dataloader = dict(dataset=dict(metainfo=dict(classes=classes)))
val_dataloader = dict(dataset=dict(metainfo=dict(classes=classes)))
test_dataloader = val_dataloader

model = dict(decode_head=dict(vocabulary=classes))

optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='float16',
    optimizer=dict(type='AdamW', lr=5e-5, weight_decay=1e-4,
                   betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(
        custom_keys=dict(
            query_embed=dict(decay_mult=0.0),
            query_feat=dict(decay_mult=0.0),
            level_embed=dict(decay_mult=0.0)),
        norm_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=500),
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=20000,
         by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20000,
                 val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
