# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Self-describing Stage-2 checkpoints, run as a user runs the tools: a
tiny Stage 2 trained with ``--cfg-options model.stage1_checkpoint=X`` and
tested with the plain config predicts exactly what a test passing the
option again predicts (its frozen U-Net is restored from the checkpoint),
and a config naming another Stage-1 checkpoint is refused unless
``model.override_frozen_sources=True``."""
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from imdd_mm.utils import safe_torch_load
from imdd_mm.utils.provenance import (FROZEN_SOURCES_KEY, RANDOM_FROZEN_KEY,
                                      file_sha256)
from tests.test_tools._runner import REPO_ROOT, run_tool

TINY2 = REPO_ROOT / 'configs' / 'imdd' / 'tiny' / 'stage2_tiny.py'


def _stage1_checkpoint(path, seed):
    """A tiny Stage-1 checkpoint (trained-looking U-Net + MLP weights) with
    the frozen sources FrozenSourcesHook records."""
    from tests.test_models.test_pretrainers.stage1_utils import \
        build_tiny_pretrainer

    from imdd_mm.engine.hooks import FrozenSourcesHook
    model = build_tiny_pretrainer()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    ckpt = dict(state_dict=model.state_dict(), meta=dict())
    FrozenSourcesHook().before_save_checkpoint(
        SimpleNamespace(model=model), ckpt)
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('frozen_sources')
    from imdd_mm.datasets.synthetic_surfaces import write_surface_dataset
    images = tmp / 'surfaces'
    dataset_yaml = write_surface_dataset(
        images, num_per_class=dict(train=2, val=1, test=1), size=64)
    converted = tmp / 'converted'
    import yaml

    from data_converters.convert import convert
    convert('folder', str(images), str(converted), progress=False,
            config=yaml.safe_load(open(dataset_yaml)))
    ann = converted / 'annotations'
    plain = tmp / 'stage2_plain.py'
    plain.write_text(f'''_base_ = [{str(TINY2)!r}]
image_size = (64, 64)
_data = dict(data_root='', data_prefix=dict(img='{images}/'))
train_dataloader = dict(dataset=dict(ann_file='{ann / "train.json"}',
                                     **_data))
val_dataloader = dict(dataset=dict(ann_file='{ann / "val.json"}', **_data))
test_dataloader = val_dataloader
val_evaluator = [dict(type='AnomalyMetric')]
test_evaluator = val_evaluator
train_cfg = dict(max_iters=2)
default_hooks = dict(checkpoint=dict(interval=2))
randomness = dict(seed=0)
''')
    stage1 = _stage1_checkpoint(tmp / 'stage1.pth', seed=1)
    other = _stage1_checkpoint(tmp / 'stage1_other.pth', seed=2)
    work = tmp / 'stage2'
    run_tool(['tools/train.py', plain, '--work-dir', work, '--cfg-options',
              f'model.stage1_checkpoint={stage1}'])
    return SimpleNamespace(tmp=tmp, plain=plain, stage1=stage1, other=other,
                           ckpt=work / 'iter_2.pth')


def _predictions(path):
    with open(path, 'rb') as f:
        results = pickle.load(f)
    return [(r['pred_instances']['scores'], r['pred_score_map']['data'])
            for r in results]


@pytest.mark.slow
def test_stage2_checkpoint_describes_its_frozen_networks(setup):
    meta = safe_torch_load(str(setup.ckpt), map_location='cpu')['meta']
    sources = meta[FROZEN_SOURCES_KEY]
    unet = sources['backbone.unet']
    assert unet['kind'] == 'stage1_checkpoint'
    assert unet['path'] == str(setup.stage1)
    assert unet['sha256'] == file_sha256(setup.stage1)
    assert sources['captioner.mlp']['sha256'] == unet['sha256']
    assert sources['backbone.vae']['kind'] == 'random'  # tiny, by design
    assert meta[RANDOM_FROZEN_KEY] is True


def _test_in_process(config, checkpoint, out, work_dir, **cfg_options):
    """tools/test.py's steps in this process (saves a tool start-up)."""
    from mmdet.evaluation import DumpDetResults
    from mmengine.config import Config
    from mmengine.runner import Runner

    from imdd_mm.utils import register_all_modules
    from imdd_mm.utils.provenance import prepare_frozen_sources
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict(cfg_options)
    cfg.work_dir = str(work_dir)
    cfg.load_from = str(checkpoint)
    prepare_frozen_sources(cfg, cfg.load_from)
    runner = Runner.from_cfg(cfg)
    runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=out))
    runner.test()


@pytest.mark.slow
def test_plain_config_test_restores_the_stage1_unet(setup, monkeypatch):
    from mmengine.config import Config
    # yapf-formatting the config for the log costs tens of seconds on a
    # loaded CPU and is not under test
    monkeypatch.setattr(Config, 'pretty_text', property(lambda c: c.text))
    plain_out, again_out = setup.tmp / 'plain.pkl', setup.tmp / 'again.pkl'
    proc = run_tool(['tools/test.py', setup.plain, setup.ckpt, '--work-dir',
                     setup.tmp / 't1', '--out', plain_out])
    assert 'restored from the recorded Stage-1 checkpoint' in \
        proc.stdout + proc.stderr
    # the results JSON records the frozen sources (benchmark footnotes)
    import json
    (metrics, ) = [p for p in (setup.tmp / 't1').glob('*/*.json')
                   if p.name != 'result.json']
    recorded = json.loads(metrics.read_text())['frozen_sources']
    assert recorded['backbone.unet']['path'] == str(setup.stage1)
    # ... and so does the run record of tools/test.py (result.json)
    (result, ) = (setup.tmp / 't1').glob('*/result.json')
    record = json.loads(result.read_text())['record']
    unet = [s for s in record['frozen_sources']
            if s['name'] == 'backbone.unet']
    assert unet and unet[0]['path'] == str(setup.stage1)
    _test_in_process(setup.plain, setup.ckpt, str(again_out),
                     setup.tmp / 't2',
                     **{'model.stage1_checkpoint': str(setup.stage1)})
    plain, again = _predictions(plain_out), _predictions(again_out)
    assert len(plain) == len(again) > 0
    for (s1, m1), (s2, m2) in zip(plain, again):
        assert torch.equal(torch.as_tensor(s1), torch.as_tensor(s2))
        assert np.array_equal(np.asarray(m1), np.asarray(m2))
    # the plain config really names no Stage-1 checkpoint
    from mmengine.config import Config
    assert Config.fromfile(str(setup.plain)).model.stage1_checkpoint is None


@pytest.mark.slow
def test_other_stage1_checkpoint_is_refused_unless_overridden(setup):
    from mmengine.config import Config

    from imdd_mm.utils.provenance import (FrozenSourceMismatch,
                                          restore_frozen_sources)
    cfg = Config.fromfile(str(setup.plain))
    cfg.model.stage1_checkpoint = str(setup.other)
    with pytest.raises(FrozenSourceMismatch) as err:
        restore_frozen_sources(cfg, str(setup.ckpt))
    assert 'model.override_frozen_sources=True' in str(err.value)
    assert str(setup.stage1) in str(err.value)
    restore_frozen_sources(cfg, str(setup.ckpt), override=True)
    assert cfg.model.stage1_checkpoint == str(setup.other)
    # plain config: the recorded checkpoint is filled in
    cfg = Config.fromfile(str(setup.plain))
    restore_frozen_sources(cfg, str(setup.ckpt))
    assert cfg.model.stage1_checkpoint == str(setup.stage1)


@pytest.mark.slow
def test_infer_with_plain_config_restores_the_stage1_unet(setup,
                                                          monkeypatch):
    """tools/infer.py (its main, in this process) with the plain config
    gives what it gives with the Stage-1 option passed again."""
    import importlib.util
    import json
    import sys
    spec = importlib.util.spec_from_file_location(
        'imdd_tools_infer_fs', REPO_ROOT / 'tools' / 'infer.py')
    infer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(infer)
    (image, ) = sorted((setup.tmp / 'surfaces').rglob('*.png'))[:1]
    outs = []
    for name, extra in (('plain', []), ('again', [
            '--cfg-options', f'model.stage1_checkpoint={setup.stage1}'])):
        out = setup.tmp / f'infer_{name}'
        monkeypatch.setattr(sys, 'argv', [
            'infer.py', str(image), str(setup.plain), str(setup.ckpt),
            '--vocab', 'scratch,crack', '--out', str(out), '--device',
            'cpu', '--score-thr', '0'] + extra)
        assert infer.main() == 0
        (record, ) = [p for p in out.glob('*.json')
                      if p.name != 'summary.json']
        outs.append(json.loads(record.read_text()))
    assert outs[0]['instances'] == outs[1]['instances']
    assert outs[0]['max_defect_probability'] == \
        outs[1]['max_defect_probability']
