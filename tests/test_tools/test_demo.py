# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""tools/demo.py on real data (``make demo DATA=...``): the configs it writes
are the small recipe's (Stage 2 = study_a.py, the U-Net = study_c.py) with
the same data and CPU-time budget, and a CI-sized end-to-end run on real
Magnetic Tile images puts our model, the plain U-Net and the two model-free
maps in one table (Markdown, CSV and the HTML report)."""
import csv
import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
from mmengine.config import Config

from ..demo_tool import load_demo_tool
from ..test_models.test_detectors._mt_subset import link_subset, \
    shared_mt_root

REPO = Path(__file__).resolve().parents[2]


def _demo():
    return load_demo_tool()


def test_scaled_stage1_schedule_follows_the_small_recipe():
    demo = _demo()
    base = Config.fromfile(str(REPO / 'configs/imdd/small/stage1_small.py'))
    full = base.train_cfg.max_iters
    s = demo.scaled_stage1_settings(full // 3)
    warm, cos = s['param_scheduler']
    assert warm['end'] == round(base.param_scheduler[0]['end'] / 3)
    assert cos['end'] == cos['T_max'] == full // 3
    assert warm['start_factor'] == base.param_scheduler[0]['start_factor']
    ema = [h for h in s['custom_hooks'] if h['type'] == 'EMAHook'][0]
    # the initial weights keep the same share (1 - m)^N of the EMA
    ref = (1 - base.custom_hooks[0]['momentum'])**full
    assert (1 - ema['momentum'])**(full // 3) == pytest.approx(ref, rel=0.2)
    # the full length reproduces the recipe
    same = demo.scaled_stage1_settings(full)
    assert same['param_scheduler'] == [dict(p) for p in base.param_scheduler]


def test_small_configs_inherit_the_recipe_and_share_data_and_budget(
        tmp_path):
    demo = _demo()
    converted, images = tmp_path / 'converted', tmp_path / 'images'
    split = dict(base=['a', 'c'], all=['a', 'b', 'c'], novel=['b'])
    args = Namespace(stage1=None, stage1_iters=20, budget=30.0, shots=0,
                     seed=0)
    paths = demo.write_small_configs(tmp_path, converted, images, split,
                                     args)
    ours = Config.fromfile(str(paths['stage2']))
    unet = Config.fromfile(str(paths['unet']))
    recipe = Config.fromfile(str(REPO / 'configs/imdd/small/stage2_small.py'))
    # the small recipe's Stage-2 settings, unchanged
    assert ours.image_size == recipe.image_size == (192, 192)
    assert tuple(ours.model.feature_keys) == ('vae_s4', 's8', 's16', 's32')
    assert ours.model.panoptic_head.num_queries == \
        recipe.model.panoptic_head.num_queries
    assert ours.model.feature_cache.dtype == 'fp16'
    assert ours.model.feature_cache.cache_dir == str(
        tmp_path / 'feature_cache_small')
    assert ours.model.stage1_checkpoint == str(
        tmp_path / 'stage1_small' / 'iter_20.pth')
    assert tuple(ours.model.test_vocabulary) == ('a', 'b', 'c')
    assert unet.model.type == 'SupervisedUNetSegmenter'
    assert unet.model.num_classes == 2
    assert tuple(unet.model.class_names) == ('a', 'c')
    # same images, same test split, same pipeline, same CPU-time budget
    for key in ('train_dataloader', 'test_dataloader'):
        assert ours[key].dataset.ann_file == unet[key].dataset.ann_file
        assert ours[key].dataset.pipeline == unet[key].dataset.pipeline
        assert ours[key].dataset.metainfo == unet[key].dataset.metainfo
    assert ours.train_dataloader.dataset.ann_file.endswith('train_base.json')
    for cfg in (ours, unet):
        hooks = {h['type']: h for h in cfg.custom_hooks}
        assert hooks['TimeBudgetHook'] == dict(
            type='TimeBudgetHook', seconds=30.0, clock='cpu')
        assert 'VocabularyHook' in hooks
    stage1 = Config.fromfile(str(paths['stage1']))
    assert stage1.train_cfg.max_iters == 20
    assert stage1.train_dataloader.dataset.ann_file == str(
        converted / 'captions.jsonl')
    assert stage1.model.unet == Config.fromfile(str(
        REPO / 'configs/imdd/small/stage1_small.py')).model.unet
    # a given Stage-1 checkpoint replaces the demo's own Stage 1
    ckpt = tmp_path / 'stage1.pth'
    ckpt.write_bytes(b'x')
    args = Namespace(stage1=str(ckpt), stage1_iters=20, budget=30.0,
                     shots=0, seed=0)
    paths = demo.write_small_configs(tmp_path, converted, images, split,
                                     args)
    assert 'stage1' not in paths
    assert Config.fromfile(str(paths['stage2'])).model.stage1_checkpoint \
        == str(ckpt)
    args.stage1 = str(tmp_path / 'missing.pth')
    with pytest.raises(SystemExit, match='missing.pth'):
        demo.write_small_configs(tmp_path, converted, images, split, args)


def test_shots_draw_a_balanced_training_file(tmp_path):
    """``--shots N``: both models train on one file of N images per base
    class plus N defect-free ones, drawn from ``train_base.json``."""
    demo = _demo()
    ann = tmp_path / 'converted' / 'annotations'
    ann.mkdir(parents=True)
    images, anns = [], []
    for i in range(12):  # 5 of class a, 3 of class c, 4 defect-free
        cat = 1 if i < 5 else 2 if i < 8 else None
        images.append(dict(id=i, file_name=f'{i}.png', width=8, height=8,
                           is_normal=cat is None))
        if cat is not None:
            anns.append(dict(id=i, image_id=i, category_id=cat,
                             bbox=[0, 0, 2, 2], area=4, iscrowd=0,
                             segmentation=[[0, 0, 2, 0, 2, 2]]))
    (ann / 'train_base.json').write_text(json.dumps(dict(
        images=images, annotations=anns,
        categories=[dict(id=1, name='a'), dict(id=2, name='c')])))
    split = dict(base=['a', 'c'], all=['a', 'b', 'c'], novel=['b'])
    args = Namespace(stage1=None, stage1_iters=20, budget=30.0, shots=4,
                     seed=0)
    paths = demo.write_small_configs(tmp_path, tmp_path / 'converted',
                                     tmp_path / 'images', split, args)
    ours = Config.fromfile(str(paths['stage2']))
    unet = Config.fromfile(str(paths['unet']))
    train = ours.train_dataloader.dataset.ann_file
    assert train == unet.train_dataloader.dataset.ann_file
    assert train == str(ann / 'train_base_n4_seed0.json')
    drawn = json.loads(Path(train).read_text())
    per_cat = {}
    for a in drawn['annotations']:
        per_cat[a['category_id']] = per_cat.get(a['category_id'], 0) + 1
    assert per_cat == {1: 4, 2: 3}  # c has only 3 images
    assert sum(im['is_normal'] for im in drawn['images']) == 4
    assert len(drawn['images']) == 11


@pytest.mark.real_data
@pytest.mark.slow
def test_real_data_demo_puts_unet_and_maps_beside_ours(tmp_path):
    """CI-sized ``make demo DATA=<Magnetic Tile>``: 6 real images per
    class, its own 2-iteration Stage 1, 3 CPU-s per model. ``break`` is the
    novel class (in the middle of the class list: the U-Net's labels must
    be mapped to the test split's classes by name)."""
    data = link_subset(shared_mt_root().resolve(), tmp_path / 'mt', 6)
    out = tmp_path / 'out'
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, 'tools/demo.py', '--data', str(data), '--out-dir',
         str(out), '--novel', 'break', '--stage1-iters', '2', '--budget',
         '3', '--max-test-images', '8', '--shots', '4'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'training file train_base_n4_seed0.json' in proc.stdout

    # both models trained for the same CPU-time budget
    budgets = [json.loads((out / d / 'time_budget.json').read_text())
               for d in ('stage2_small', 'unet')]
    for info in budgets:
        assert info['clock'] == 'cpu' and info['budget_s'] == 3.0
        assert info['iters'] >= 1
    # the U-Net's predictions were scored against the 5 test classes
    unet_result = json.loads(next((out / 'test_unet').glob(
        '*/result.json')).read_text())
    assert 'cls/defect_class_accuracy' in unet_result['metrics']
    assert 'cls/accuracy_break' in unet_result['metrics']

    with open(out / 'tables' / 'vs_baselines.csv', newline='') as f:
        header, *rows = list(csv.reader(f))
    assert header[1:] == ['P-AUROC (%)', 'AUPRO (%)', 'Pixel F1 (%)',
                          'Pixel IoU (%)', 'Image AUROC (%)',
                          'Defect-class acc. (%)']
    names = [r[0] for r in rows]
    assert names[0].startswith('Ours (small recipe; the demo\'s own '
                               '2-iteration Stage 1')
    assert names[1] == (f'Plain supervised U-Net (from scratch, '
                        f'{budgets[1]["iters"]} iterations in 3 CPU-s)')
    assert names[2:] == ['Centre-prior map (no model)',
                         'Constant map (no model)']
    for row in rows[:2]:  # the models: every column measured
        assert all(c != '–' for c in row[1:]), row
    for row in rows[2:]:  # the maps: every map metric, no class
        assert all(c != '–' for c in row[1:6]) and row[6] == '–', row
    assert float(rows[3][1]) == 50.0  # a constant map ranks at chance

    summary = (out / 'tables' / 'tables.md').read_text()
    assert 'Plain supervised U-Net' in summary
    assert 'demo_unet_small.py' in summary  # its command is printed
    report = (out / 'report.html').read_text()
    assert 'The model beside the plain supervised U-Net' in report
    for name in names:
        assert name.replace("'", '&#x27;') in report
