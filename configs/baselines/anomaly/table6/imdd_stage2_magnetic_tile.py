# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Our Stage-2 model evaluated like the anomaly baselines (Table 6 layout):
# P-AUROC / AUPRO / I-AUROC of its `pred_score_map` and `pred_image_score`
# on the same test split. Same checkpoint as configs/imdd/stage2_magnetic_tile.py.
_base_ = ['../../../imdd/stage2_magnetic_tile.py']
test_evaluator = dict(_delete_=True, type='AnomalyMetric')
