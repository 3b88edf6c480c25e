# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The small-recipe configs parse, keep their contract (cache on, stride-4
taps, study budget hook) and the baseline builds at its stated size."""
from pathlib import Path

import pytest
from mmdet.registry import MODELS
from mmengine.config import Config

SMALL = Path(__file__).resolve().parents[2] / 'configs' / 'imdd' / 'small'
CONFIGS = sorted(p for p in SMALL.glob('*.py')
                 if p.name not in ('_small_nets.py', 'study_spec.py'))


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_small_config_parses(path):
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports == dict(imports=['imdd_mm'],
                                      allow_failed_imports=False)
    if path.name.startswith('stage2') or path.name in ('study_a.py',
                                                       'study_b.py'):
        assert cfg.model.feature_cache.cache_dir
        assert cfg.model.feature_keys[0] == 'vae_s4'
        assert cfg.model.panoptic_head.strides[0] == 4
    if path.name.startswith('study_'):
        hooks = [h['type'] for h in cfg.custom_hooks]
        assert hooks == ['VocabularyHook', 'TimeBudgetHook']
    if path.name == 'stage2_small_random_unet.py':
        assert cfg.model.stage1_checkpoint is None


def test_study_spec_lists_the_three_runs():
    spec = Config.fromfile(str(SMALL / 'study_spec.py'))
    runs = [f'configs/imdd/small/study_{k}.py' for k in 'abc']
    kinds = [t['kind'] for t in spec.tables]
    assert kinds == ['data_efficiency'] * 3 + ['cross_dataset'] + [
        'ablation'] * 2
    for table in spec.tables:
        configs = [e['config'] for e in table['entries']]
        if table['kind'] == 'data_efficiency':
            assert configs == runs
            assert table['samples'] == [25, 50, 100, 1000]
            assert [e['seeds'] for e in table['entries']] == [
                {50: [0, 1, 2]}, {50: [0, 1, 2]}, {50: [0]}]
        elif table['kind'] == 'ablation':  # val-chosen threshold, seeds
            assert configs == [runs[0]] * 3 + [runs[1]] * 3 + [runs[2]]
            for e in table['entries']:
                vt = e['val_threshold']
                assert vt['cfg_options'][
                    'test_dataloader.dataset.ann_file'].endswith('/val.json')
                assert vt['key'] == 'model.test_cfg.sem_seg_thr'
                # index 2 of the evaluators is the DefectSegMetric
                cfg = Config.fromfile(e['config'])
                assert cfg.test_evaluator[2]['type'] == 'DefectSegMetric'
                assert 'test_evaluator.2.thr_sweep' in e['cfg_options']


def test_supervised_unet_baseline_size():
    cfg = Config.fromfile(str(SMALL / 'study_c.py'))
    model = MODELS.build(cfg.model)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 1.7e6 < n < 1.9e6  # the 1.81M stated in the config
