# A toy config for the tool tests (train / resume / dist_train).
custom_imports = dict(
    imports=['imdd_mm', 'tests.test_tools.toy_modules'],
    allow_failed_imports=False)
default_scope = 'mmdet'

model = dict(type='ToyRegressor', in_dim=4)
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='ToyRegressionDataset', num=32, in_dim=4))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=6, val_interval=1000)
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=0.05, weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=3, end=6, T_max=3)
]
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=3, by_epoch=False),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [dict(type='RankRecordHook')]
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0, deterministic=False)
log_level = 'INFO'
load_from = None
resume = False
