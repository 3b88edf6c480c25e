# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The per-category protocol end to end: a tiny MVTec-AD-layout dataset
with three categories, converted, then tools/train.py + tools/test.py run by
benchmark_table.py per category (tiny PatchCore)."""
import csv
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CATEGORIES = ('bottle', 'cable', 'screw')


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'benchmark_table',
        REPO / 'tools' / 'analysis_tools' / 'benchmark_table.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_mvtec_layout(root: Path) -> None:
    """MVTec AD's published tree: <cat>/train/good, <cat>/test/{good,
    crack}, <cat>/ground_truth/crack/<i>_mask.png (64 x 64 images, a bright
    square on each defect image)."""
    rng = np.random.default_rng(0)
    for c, cat in enumerate(CATEGORIES):
        base = 60 + 40 * c

        def image(defect_at=None):
            img = np.clip(base + rng.normal(0, 6, (64, 64, 3)), 0,
                          255).astype(np.uint8)
            mask = np.zeros((64, 64), np.uint8)
            if defect_at is not None:
                y, x = defect_at
                img[y:y + 12, x:x + 12] = 250
                mask[y:y + 12, x:x + 12] = 255
            return img, mask

        for split, kind, n in (('train', 'good', 4), ('test', 'good', 2),
                               ('test', 'crack', 2)):
            folder = root / cat / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                at = (8 + 20 * i, 30 - 10 * i) if kind == 'crack' else None
                img, mask = image(at)
                assert cv2.imwrite(str(folder / f'{i:03d}.png'), img)
                if kind == 'crack':
                    gt = root / cat / 'ground_truth' / 'crack'
                    gt.mkdir(parents=True, exist_ok=True)
                    assert cv2.imwrite(str(gt / f'{i:03d}_mask.png'), mask)
    (root / 'license.txt').write_text('CC BY-NC-SA 4.0')


def _csv(path: Path):
    with open(path) as f:
        return list(csv.reader(f))


@pytest.mark.slow
def test_per_category_table_end_to_end(tmp_path, monkeypatch):
    from data_converters.convert import convert
    root, conv = tmp_path / 'mvtec_ad', tmp_path / 'imdd'
    make_mvtec_layout(root)
    convert('mvtec_ad', str(root), str(conv), config={}, progress=False)
    ann = conv / 'annotations'
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join(
        [str(REPO)] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    data = {f'{s}_dataloader.dataset.{k}': v for s in ('train', 'test')
            for k, v in (('data_prefix.img', f'{root}/'),
                         ('ann_file', str(ann / f'{s}.json')))}
    spec = dict(work_dir=str(tmp_path / 'wd'), decimals=3, tables=[dict(
        kind='anomaly', name='t6', title='Table 6 (tiny).',
        categories=list(CATEGORIES), entries=[
            dict(name='PatchCore-tiny', train=True, cfg_options=data,
                 config=str(REPO / 'configs' / 'baselines' / 'anomaly' /
                            'tiny' / 'patchcore_tiny_mvtec_ad.py'))])])
    spec_file = tmp_path / 'spec.yaml'
    spec_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / 'out'
    bt = _load_tool()
    args = [str(spec_file), '--out-dir', str(out), '--python',
            sys.executable, '--test-script', str(REPO / 'tools' / 'test.py'),
            '--train-script', str(REPO / 'tools' / 'train.py'), '--fork']
    assert bt.main(args) == 0

    wd = tmp_path / 'wd' / 't6' / 'PatchCore-tiny'
    per_cat = {}
    for cat in CATEGORIES:
        results = sorted((wd / cat).glob('*/result.json'))
        assert len(results) == 1, cat
        result = json.loads(results[0].read_text())
        rec = result['record']
        # each category fitted on its own normal images, tested on its own
        assert rec['cfg_options']['category'] == cat
        assert rec['train_samples']['images'] == 4
        assert rec['checkpoint'].startswith(str(wd / cat / 'train'))
        assert rec['checkpoint_sha256'] and rec['config_sha256']
        assert rec['git_commit']
        per_cat[cat] = result['metrics']
    # the test sets differ per category (file_prefix followed category)
    assert len({m['anomaly/P-AUROC'] for m in per_cat.values()}) > 1 or \
        len({json.dumps(m) for m in per_cat.values()}) > 1

    rows = _csv(out / 't6_per_category.csv')
    assert rows[0] == ['Category', 'PatchCore-tiny P-AUC-ROC',
                       'PatchCore-tiny AUC-PRO']
    assert [r[0] for r in rows[1:]] == list(CATEGORIES) + [
        'Mean (3 categories)']
    for col, key in ((1, 'anomaly/P-AUROC'), (2, 'anomaly/AUPRO')):
        for r, cat in zip(rows[1:4], CATEGORIES):
            assert r[col] == f'{per_cat[cat][key] * 100:.3f}'
        cells = [float(r[col]) for r in rows[1:4]]
        mean = np.mean([per_cat[c][key] * 100 for c in CATEGORIES])
        assert rows[4][col] == f'{mean:.3f}'
        assert abs(float(rows[4][col]) - np.mean(cells)) < 1e-3
    main = _csv(out / 't6.csv')
    assert main[0] == ['Method', 'PatchCore-tiny (mean)']
    assert main[1][1] == rows[4][1] and main[2][1] == rows[4][2]
    assert main[3] == ['# Training Samples', '4 normal per category']
    md = (out / 't6.md').read_text()
    assert '--cfg-options' in md and 'category=cable' in md
    assert 'tools/train.py' in md and 'Provenance' in md

    # a partial run: one category's result is gone -> its row is missing,
    # the mean is marked partial, the other categories are kept
    shutil.rmtree(next((wd / 'screw').glob('2*')))
    assert bt.main(args + ['--collect-only']) == 0
    rows = _csv(out / 't6_per_category.csv')
    assert rows[3][1:] == ['–', '–']
    assert rows[1][1] == f'{per_cat["bottle"]["anomaly/P-AUROC"] * 100:.3f}'
    assert rows[4][1].endswith('*')
    assert _csv(out / 't6.csv')[1][1].endswith('*')
