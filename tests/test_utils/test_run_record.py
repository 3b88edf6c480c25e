# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Provenance records of test runs (imdd_mm.utils.run_record)."""
import hashlib
import json

import pytest
from mmengine.config import Config

from imdd_mm.utils import run_record as rr

CONFIG = '''
category = 'bottle'
categories = ('bottle', 'cable')
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
train_dataloader = dict(dataset=dict(
    type='AnomalyCocoDataset', data_root='', ann_file='{train}',
    normality='normal', file_prefix='${{category}}/'))
test_dataloader = dict(dataset=dict(
    type='AnomalyCocoDataset', data_root='', ann_file='{test}',
    file_prefix='${{category}}/',
    pipeline=[dict(type='X', tag=('${{category}}', 1))]))
test_evaluator = dict(type='AnomalyMetric')
model = dict(type='M', object_name='${{category}}')
'''


def _coco(path, images, anns=()):
    cats = [dict(id=1, name='bottle/crack'), dict(id=2, name='cable/cut')]
    path.write_text(json.dumps(dict(images=images, annotations=list(anns),
                                    categories=cats)))
    return str(path)


@pytest.fixture
def setup(tmp_path):
    train = _coco(tmp_path / 'train.json', [
        dict(id=i, file_name=f'{c}/train/good/{i}.png', is_normal=True)
        for i, c in enumerate(['bottle'] * 3 + ['cable'] * 2)])
    test = _coco(tmp_path / 'test.json', [
        dict(id=1, file_name='bottle/test/crack/0.png', is_normal=False),
        dict(id=2, file_name='cable/test/cut/0.png', is_normal=False)],
        [dict(id=1, image_id=1, category_id=1),
         dict(id=2, image_id=2, category_id=2)])
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(CONFIG.format(train=train, test=test))
    ckpt = tmp_path / 'epoch_1.pth'
    ckpt.write_bytes(b'weights v1')
    return tmp_path, str(cfg), str(ckpt)


def test_category_resolves_at_run_time(setup):
    _, cfg_path, _ = setup
    cfg = rr.load_run_config(cfg_path, {'category': 'cable'})
    assert cfg.train_dataloader.dataset.file_prefix == 'cable/'
    assert cfg.test_dataloader.dataset.file_prefix == 'cable/'
    assert cfg.test_dataloader.dataset.pipeline[0].tag == ('cable', 1)
    assert cfg.model.object_name == 'cable'
    assert rr.load_run_config(cfg_path).model.object_name == 'bottle'
    bad = Config(dict(model=dict(object_name='${category}')))
    with pytest.raises(KeyError, match=r'model.object_name.*category=<name>'):
        rr.resolve_run_vars(bad)


def test_expected_record_matches_the_run_and_detects_changes(setup):
    tmp_path, cfg_path, ckpt = setup
    opts = rr.parse_cfg_options(['category=cable'])
    assert opts == {'category': 'cable'}
    cfg = rr.load_run_config(cfg_path, opts)

    class Model:
        def frozen_sources(self):
            return [dict(name='backbone', source='random', random=True)]

    record = rr.build_run_record(cfg, cfg_path, ckpt, opts, model=Model())
    assert record['checkpoint_sha256'] == hashlib.sha256(
        b'weights v1').hexdigest()
    assert record['frozen_sources'] == [
        dict(name='backbone', source='random', random=True)]
    assert [f['path'] for f in record['data_files']] == [
        str(tmp_path / 'test.json')]
    # counted from the training file with the category and normal filter
    assert record['train_samples']['images'] == 2
    assert record['train_samples']['defective'] == 0
    assert record['git_commit'] and record['date'] and record['device']
    expected = rr.expected_record(cfg_path, ckpt, opts)
    assert rr.record_mismatches(record, expected) == []
    # every provenance field is checked
    other = rr.expected_record(cfg_path, ckpt, {'category': 'bottle'})
    why = rr.record_mismatches(record, other)
    assert any(w.startswith('config_sha256') for w in why)
    assert any(w.startswith('cfg_options') for w in why)
    (tmp_path / 'epoch_1.pth').write_bytes(b'weights v2')
    why = rr.record_mismatches(record, rr.expected_record(cfg_path, ckpt,
                                                          opts))
    assert [w.split(':')[0] for w in why] == ['checkpoint_sha256']
    (tmp_path / 'epoch_1.pth').write_bytes(b'weights v1')
    with open(tmp_path / 'test.json', 'a') as f:
        f.write(' ')
    why = rr.record_mismatches(record, rr.expected_record(cfg_path, ckpt,
                                                          opts))
    assert [w.split(':')[0] for w in why] == ['data_files']
    assert rr.record_mismatches(None, expected) == [
        'the result has no provenance record']
    # the config hash ignores where outputs go
    cfg2 = rr.load_run_config(cfg_path, opts)
    cfg2.work_dir = '/elsewhere'
    assert rr.config_sha256(cfg2) == rr.config_sha256(cfg)


def test_frozen_sources_fallbacks_and_result_file(setup, tmp_path):
    assert rr.collect_frozen_sources(object()) == []
    meta = dict(imdd_frozen_sources={'unet': dict(path='u.bin')})
    assert rr.collect_frozen_sources(None, meta) == [dict(name='unet',
                                                          path='u.bin')]
    path = rr.write_result(str(tmp_path / 'r' / 'result.json'),
                           {'a/x': 0.5}, dict(config='c.py'))
    assert rr.load_result(path)['metrics'] == {'a/x': 0.5}
    (tmp_path / 'bad.json').write_text('{"x": 1}')
    with pytest.raises(ValueError, match='bad.json: not a result'):
        rr.load_result(str(tmp_path / 'bad.json'))


def test_training_free_config(tmp_path):
    cfg = Config(dict(train_cfg=None, train_dataloader=None))
    assert rr.training_samples(cfg)['training_free'] is True


@pytest.mark.parametrize('config', [
    'configs/baselines/anomaly/patchcore_wrn50_mvtec_ad.py',
    'configs/baselines/anomaly/simplenet_wrn50_visa.py',
    'configs/baselines/anomaly/table6/imdd_stage2_mvtec_ad.py',
    'configs/baselines/anomaly/table6/imdd_stage2_visa.py',
])
def test_category_configs_follow_the_override(config):
    """Table 6's per-category runs: --cfg-options category=<name> reaches
    the train and test datasets of every method (not only the default)."""
    from pathlib import Path
    path = str(Path(__file__).resolve().parents[2] / config)
    cfg = rr.load_run_config(path, {'category': 'pcb1'})
    for split in ('train', 'test'):
        assert cfg[f'{split}_dataloader'].dataset.file_prefix == 'pcb1/'
    if 'table6' in config:  # ours: the 200-per-class split, no val loop
        assert cfg.train_dataloader.dataset.ann_file.endswith(
            'train_200shot.json')
        assert cfg.test_dataloader.dataset.ann_file.endswith(
            'test_200shot.json')
        assert cfg.val_dataloader is None


@pytest.mark.parametrize('spec', ['table6_mvtec_ad', 'table6_visa',
                                  'table6_magnetic_tile'])
def test_table6_specs_name_existing_configs(spec):
    """Every Table 6 spec loads and each entry's config exists and resolves
    with a per-category override."""
    from pathlib import Path

    import yaml
    repo = Path(__file__).resolve().parents[2]
    data = yaml.safe_load(
        (repo / 'configs/baselines/anomaly/table6' / f'{spec}.yaml'
         ).read_text())
    for table in data['tables']:
        for entry in table['entries']:
            path = repo / entry['config']
            assert path.is_file(), entry['config']
            cfg = rr.load_run_config(str(path), {'category': 'x'})
            if table.get('categories') == 'config':
                assert cfg.get('categories'), entry['config']
                assert cfg.test_dataloader.dataset.file_prefix == 'x/'
