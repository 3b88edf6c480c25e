# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The model zoo's ``metafile.yml`` files follow MMDetection's metafile
format, list every config of their family, point to configs that load and
to READMEs that exist, and claim no result or weights without a run."""
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FAMILIES = ('configs/imdd', 'configs/baselines/yolov8',
            'configs/baselines/anomaly', 'configs/baselines/unet')
METRIC_TASKS = {'Instance Segmentation', 'Object Detection',
                'Semantic Segmentation', 'Image Classification',
                'Anomaly Detection'}


def _family_configs(folder: Path):
    return sorted(
        p for p in folder.rglob('*.py')
        if not p.name.startswith('_') and '_base_' not in p.parts
        and 'table6' not in p.parts
        and not p.name.endswith('_spec.py'))  # benchmark-table specs


@pytest.mark.parametrize('family', FAMILIES)
def test_metafile_format(family):
    from mmengine.config import Config
    folder = REPO / family
    data = yaml.safe_load((folder / 'metafile.yml').read_text())
    assert set(data) == {'Collections', 'Models'}
    collections = {}
    for coll in data['Collections']:
        assert set(coll) <= {'Name', 'Metadata', 'Paper', 'README', 'Code'}
        assert coll['Paper']['Title']
        assert (REPO / coll['README']).is_file(), coll['README']
        assert (REPO / coll['Code']['URL']).exists(), coll['Code']
        assert coll['Metadata']['Training Data']
        collections[coll['Name']] = coll
    listed = set()
    for model in data['Models']:
        assert set(model) <= {'Name', 'In Collection', 'Config', 'Metadata',
                              'Results', 'Weights'}, model['Name']
        assert model['In Collection'] in collections, model['Name']
        cfg_path = REPO / model['Config']
        assert cfg_path.is_file(), model['Config']
        assert cfg_path.stem == model['Name']  # mmdet: name = config stem
        Config.fromfile(str(cfg_path))  # it loads
        assert model['Metadata']['Training Data']
        for result in model.get('Results', []):
            assert result['Task'] in METRIC_TASKS
            assert result['Dataset']
            assert all(isinstance(v, (int, float))
                       for v in result['Metrics'].values())
        # no run produced weights or numbers yet: none may be claimed
        assert 'Weights' not in model and 'Results' not in model, \
            model['Name']
        listed.add(cfg_path.resolve())
    missing = [str(p.relative_to(REPO)) for p in _family_configs(folder)
               if p.resolve() not in listed]
    assert not missing, f'configs missing from {family}/metafile.yml: ' \
        f'{missing}'


def test_model_names_unique_and_resolvable():
    from imdd_mm.apis import find_model, load_metafiles
    entries = load_metafiles()
    names = [e['name'] for e in entries]
    assert len(names) == len(set(names))
    assert len(names) >= 45
    for name in ('stage2_tiny', 'yolov8_m_mvtec_ad', 'patchcore_wrn50_visa'):
        assert Path(find_model(name)['config']).is_file()


def _tables(text: str):
    """Markdown tables as (header cells, rows of cells)."""
    tables, block = [], []
    for line in text.splitlines() + ['']:
        if line.startswith('|'):
            block.append([c.strip() for c in line.strip('|').split('|')])
        elif block:
            tables.append((block[0], block[2:]))
            block = []
    return tables


@pytest.mark.parametrize('family', FAMILIES)
def test_readme_labels_paper_numbers(family):
    """In "Results and models" a column with numbers is the paper's, and
    every column of ours says "not run" or points ("see ...") to where the
    measured numbers stand with their commands."""
    text = (REPO / family / 'README.md').read_text()
    parts = text.split('## Results and models', 1)
    assert len(parts) == 2, 'no "Results and models" section'
    section = parts[1].split('\n## ', 1)[0]
    number = re.compile(r'^\d+(\.\d+)?( / \d+(\.\d+)?)*$')
    tables = _tables(section)
    assert tables
    for header, rows in tables:
        assert any(h.startswith('ours') for h in header), header
        for row in rows:
            assert len(row) == len(header), row
            for head, cell in zip(header, row):
                if head.startswith('ours'):
                    assert cell == 'not run' or cell.startswith('see '), \
                        (head, row)
                elif number.match(cell):
                    assert 'paper' in head, (head, row)
