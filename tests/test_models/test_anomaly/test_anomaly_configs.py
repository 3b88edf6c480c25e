# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The anomaly baseline configs: every config parses and names registered
components; tiny configs run end to end through mmengine's Runner (fit on
Magnetic Tile normals, test with AnomalyMetric, reload the checkpoint)."""
import json
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from mmdet.registry import DATASETS, HOOKS, METRICS, MODELS

CONFIG_DIR = Path(__file__).resolve().parents[3] / 'configs' / \
    'baselines' / 'anomaly'
METHOD_CONFIGS = sorted(CONFIG_DIR.glob('*.py'))
TINY_CONFIGS = sorted(
    p for p in (CONFIG_DIR / 'tiny').glob('*.py')
    if not p.name.startswith('_'))

DEFECTS = (('MT_Blowhole', 'blowhole'), ('MT_Crack', 'crack'),
           ('MT_Break', 'break'))


def test_every_method_has_all_datasets():
    names = {p.name for p in METHOD_CONFIGS}
    settings = ('patchcore_wrn50', 'simplenet_wrn50', 'musc_vit_b16',
                'winclip_zero_shot_vit_b16', 'winclip_4shot_vit_b16',
                'promptad_4shot_vit_b16', 'ddad_unet', 'dmad_conv',
                'dmad_ppdm_wrn50', 'fair_unet')
    expected = {f'{s}_{ds}.py' for s in settings
                for ds in ('mvtec_ad', 'visa', 'magnetic_tile')}
    assert names == expected


@pytest.mark.parametrize('path', METHOD_CONFIGS + TINY_CONFIGS,
                         ids=lambda p: p.name)
def test_config_parses_and_is_registered(path):
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'mmdet'
    assert MODELS.get(cfg.model.type) is not None
    assert METRICS.get(cfg.test_evaluator.type) is not None
    assert DATASETS.get(cfg.test_dataloader.dataset.type) is not None
    assert cfg.test_dataloader.dataset.get('normality') is None
    if cfg.get('train_dataloader'):
        assert cfg.train_dataloader.dataset.normality == 'normal'
        assert cfg.train_cfg.max_epochs >= 1
        for hook in cfg.get('custom_hooks', []):
            assert HOOKS.get(hook['type']) is not None
    else:
        assert cfg.get('train_cfg') is None


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def make_magnetic_tile_coco(mt_root: Path, out: Path) -> Path:
    """A miniature converter output (DESIGN "Converters' output") over real
    Magnetic Tile files: train = 6 MT_Free images, test = 2 MT_Free + 3
    defective images with their masks (> 127)."""
    import cv2
    cats = [dict(id=i + 1, name=name, supercategory='defect')
            for i, (_, name) in enumerate(DEFECTS)]
    free = sorted((mt_root / 'MT_Free' / 'Imgs').glob('*.jpg'))
    splits = dict(train=[(p, None) for p in free[:6]],
                  test=[(p, None) for p in free[6:8]])
    for i, (folder, _) in enumerate(DEFECTS):
        path = sorted((mt_root / folder / 'Imgs').glob('*.jpg'))[0]
        splits['test'].append((path, i + 1))
    (out / 'annotations').mkdir(parents=True)
    for split, items in splits.items():
        images, anns = [], []
        for img_id, (path, cat) in enumerate(items, 1):
            mask = cv2.imread(str(path.with_suffix('.png')),
                              cv2.IMREAD_GRAYSCALE) > 127
            h, w = mask.shape
            images.append(
                dict(id=img_id, file_name=str(path.relative_to(mt_root)),
                     width=w, height=h, is_normal=cat is None,
                     source='magnetic_tile', split=split, image_label=cat,
                     caption='', caption_nouns=[]))
            if cat is not None:
                ys, xs = np.nonzero(mask)
                x0, y0 = int(xs.min()), int(ys.min())
                anns.append(
                    dict(id=len(anns) + 1, image_id=img_id, category_id=cat,
                         segmentation=_rle(mask), area=int(mask.sum()),
                         bbox=[x0, y0, int(xs.max()) - x0 + 1,
                               int(ys.max()) - y0 + 1], iscrowd=0))
        with open(out / 'annotations' / f'{split}.json', 'w') as f:
            json.dump(dict(images=images, annotations=anns,
                           categories=cats), f)
    return out


@pytest.fixture(scope='module')
def mt_coco(magnetic_tile_root, tmp_path_factory):
    out = tmp_path_factory.mktemp('mt_coco')
    return magnetic_tile_root, make_magnetic_tile_coco(magnetic_tile_root,
                                                       out)


def _tiny_cfg(name: str, mt_coco, work_dir: Path) -> Config:
    mt_root, ann_root = mt_coco
    cfg = Config.fromfile(str(CONFIG_DIR / 'tiny' / name))
    cfg.work_dir = str(work_dir)
    loaders = [('test', cfg.test_dataloader)]
    if cfg.get('train_dataloader'):
        loaders.append(('train', cfg.train_dataloader))
    for split, loader in loaders:
        loader.dataset.data_prefix = dict(img=str(mt_root) + '/')
        loader.dataset.ann_file = str(ann_root / 'annotations' /
                                      f'{split}.json')
    return cfg


def _check_metrics(metrics: dict) -> None:
    for key in ('anomaly/P-AUROC', 'anomaly/AUPRO', 'anomaly/I-AUROC'):
        assert np.isfinite(metrics[key]) and 0 <= metrics[key] <= 1, key


@pytest.mark.real_data
def test_patchcore_tiny_runner_fit_test_and_reload(mt_coco, tmp_path):
    from mmengine.runner import Runner
    cfg = _tiny_cfg('patchcore_tiny_magnetic_tile.py', mt_coco, tmp_path)
    runner = Runner.from_cfg(cfg)
    runner.train()
    bank = runner.model.memory_bank
    # 6 normal images x 8x8 patches x coreset 0.25
    assert bank.shape == (96, 64)
    metrics = runner.test()
    _check_metrics(metrics)
    ckpt = tmp_path / 'epoch_1.pth'
    assert ckpt.is_file()
    cfg2 = _tiny_cfg('patchcore_tiny_magnetic_tile.py', mt_coco,
                     tmp_path / 'reload')
    cfg2.load_from = str(ckpt)
    cfg2.train_dataloader = None
    cfg2.train_cfg = None
    cfg2.optim_wrapper = None
    cfg2.param_scheduler = None
    # a different random backbone would change the scores: same seed
    runner2 = Runner.from_cfg(cfg2)
    runner2.model.backbone.load_state_dict(runner.model.backbone.state_dict())
    metrics2 = runner2.test()
    assert torch_allclose(runner2.model.memory_bank, bank)
    for key, value in metrics.items():
        assert metrics2[key] == pytest.approx(value)


def torch_allclose(a, b) -> bool:
    import torch
    return bool(torch.allclose(a.cpu(), b.cpu()))


@pytest.mark.real_data
@pytest.mark.parametrize('name', [
    'simplenet_tiny_magnetic_tile.py', 'musc_tiny_magnetic_tile.py',
    'winclip_4shot_tiny_magnetic_tile.py', 'dmad_tiny_magnetic_tile.py',
    'dmad_ppdm_tiny_magnetic_tile.py', 'fair_tiny_magnetic_tile.py'
])
def test_tiny_configs_run(name, mt_coco, tmp_path):
    from mmengine.runner import Runner
    cfg = _tiny_cfg(name, mt_coco, tmp_path)
    runner = Runner.from_cfg(cfg)
    if cfg.get('train_dataloader'):
        runner.train()
    _check_metrics(runner.test())


@pytest.mark.parametrize('name', ['magnetic_tile', 'mvtec_ad'])
def test_table6_spec_and_our_anomaly_config(name):
    """The Table 6 spec loads in the benchmark-table tool and lists every
    baseline config of this directory next to ours (scored by the same
    AnomalyMetric)."""
    import importlib.util
    tool = CONFIG_DIR.parents[2] / 'tools' / 'analysis_tools' / \
        'benchmark_table.py'
    if not tool.is_file():
        pytest.skip('tools/analysis_tools/benchmark_table.py not present')
    spec_mod = importlib.util.spec_from_file_location('benchmark_table',
                                                      tool)
    bt = importlib.util.module_from_spec(spec_mod)
    spec_mod.loader.exec_module(bt)
    spec = bt.load_spec(str(CONFIG_DIR / 'table6' / f'table6_{name}.yaml'))
    table, = spec['tables']
    assert table['kind'] == 'anomaly'
    names = [e['name'] for e in table['entries']]
    assert names == ['MuSc-style', 'PromptAD-style', 'DDAD-style',
                     'DMAD-style', 'DMAD-PPDM-style', 'FAIR-style',
                     'SimpleNet', 'PatchCore', 'Ours']
    repo = CONFIG_DIR.parents[2]
    for entry in table['entries']:
        assert (repo / entry['config']).is_file(), entry['config']
    ours = Config.fromfile(
        str(CONFIG_DIR / 'table6' / f'imdd_stage2_{name}.py'))
    assert ours.test_evaluator == dict(type='AnomalyMetric')
