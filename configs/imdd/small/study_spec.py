# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# The small study side by side (issue: same data, same labels, same CPU
# time), for tools/analysis_tools/benchmark_table.py:
#   (a) the small recipe (frozen Stage-1 U-Net + open-vocabulary head);
#   (b) the same head on the randomly initialised U-Net (Table 7's
#       "w/o diffusion pretraining");
#   (c) a plain supervised U-Net trained end to end from scratch;
# each at N labelled images per class (Figure 11 / Table 13 in miniature).
# The runs are trained by tools/misc/run_small_study.sh (equal wall-clock
# budget per run, TimeBudgetHook), which then calls
#   python tools/analysis_tools/benchmark_table.py \
#       configs/imdd/small/study_spec.py --out-dir work_dirs/small_study/tables
# N = 1000 stands for "all": every training image of a class (the
# per-class counts actually used are in the few-shot files' info and the
# study log).
work_dir = 'work_dirs/small_study/eval'
_samples = [25, 50, 100, 1000]
_runs = dict(
    a=('(a) Stage-1 U-Net + OV head (ours, small)',
       'configs/imdd/small/study_a.py'),
    b=('(b) random U-Net + OV head (w/o diffusion pretraining)',
       'configs/imdd/small/study_b.py'),
    c=('(c) supervised U-Net from scratch',
       'configs/imdd/small/study_c.py'))


def _entries():
    return [dict(name=name, config=cfg,
                 checkpoint=f'work_dirs/small_study/{key}_n{{n}}/'
                 'time_budget.pth',
                 work_dir=f'work_dirs/small_study/eval/{key}_n{{n}}')
            for key, (name, cfg) in _runs.items()]


tables = [
    dict(kind='data_efficiency', name='small_study_accuracy',
         title='Small study: defect-class accuracy vs. labelled images per '
         'class (Magnetic Tile test split)',
         samples=_samples, target=0.5, reference=_runs['a'][0],
         entries=_entries()),
    dict(kind='data_efficiency', name='small_study_pauroc',
         title='Small study: P-AUROC vs. labelled images per class',
         metrics=[['P-AUROC (%)', 'anomaly/P-AUROC']],
         samples=_samples, target=0.9, reference=_runs['a'][0],
         entries=_entries()),
    dict(kind='data_efficiency', name='small_study_iou',
         title='Small study: pixel IoU vs. labelled images per class',
         metrics=[['IoU (%)', 'seg/iou']],
         samples=_samples, target=0.3, reference=_runs['a'][0],
         entries=_entries()),
]
