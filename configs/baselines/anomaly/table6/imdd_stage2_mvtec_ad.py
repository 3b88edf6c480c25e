# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Our Stage-2 model evaluated like the anomaly baselines (Table 6 layout).
# Same checkpoint as configs/imdd/stage2_mvtec.py; restrict the test set to
# one category with --cfg-options to compare with a per-category baseline.
_base_ = ['../../../imdd/stage2_mvtec.py']
test_evaluator = dict(_delete_=True, type='AnomalyMetric')
