# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The dataset bases in mmdet's inheritance style resolve to exactly the
data settings the configs had before the refactor.

``tests/data/config_data_sections.json`` holds, for every config of the
repository at commit b8738ea (before the shared bases), its resolved data
sections (pipelines, dataloaders, evaluators, data paths). Regenerate it
from a checkout of that commit with
``python tests/test_configs/test_config_inheritance.py CONFIGS_DIR OUT``.
"""
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / 'tests' / 'data' / 'config_data_sections.json'
#: top-level keys that hold data settings (the model sections are edited by
#: other work and are not compared here)
DATA_KEYS = re.compile(r'pipeline|dataloader|evaluator|dataset|data_root|'
                       r'ann_root|img_root|image_size|img_scale|'
                       r'backend_args|metrics|num_classes')


def data_sections(path: Path) -> dict:
    """The resolved data sections of one config, as plain JSON data."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(path))
    out = {}
    for key in sorted(cfg.keys()):
        if DATA_KEYS.search(key):
            out[key] = json.loads(json.dumps(cfg[key], default=repr))
    return out


def config_files(root: Path):
    return sorted(p for p in root.rglob('*.py')
                  if not p.name.startswith('_') or p.name == '_tiny_data.py')


def test_data_sections_unchanged():
    if not REFERENCE.is_file():
        pytest.fail(f'{REFERENCE} is missing')
    reference = json.loads(REFERENCE.read_text())
    compared = 0
    for rel, expected in sorted(reference.items()):
        path = REPO / 'configs' / rel
        if not path.is_file():
            continue  # a config removed since: nothing to compare
        assert data_sections(path) == expected, rel
        compared += 1
    # every dataset base and the configs inheriting them were compared
    assert compared >= 40, compared
    for rel in ('_base_/datasets/magnetic_tile.py', '_base_/datasets/visa.py',
                'imdd/stage2_neu_det.py',
                'baselines/yolov8/yolov8_m_mvtec_ad.py'):
        assert rel in reference


def test_dataset_bases_hold_only_what_differs():
    """Each dataset file is short: the pipeline lives in one shared base."""
    for folder, shared in (('configs/_base_/datasets', 'imdd_instance.py'),
                           ('configs/baselines/yolov8/_base_/datasets',
                            'yolov8_coco_data.py')):
        for name in ('magnetic_tile.py', 'mvtec_ad.py', 'neu_det.py',
                     'visa.py'):
            text = (REPO / folder / name).read_text()
            assert shared in text, (folder, name)
            assert 'pipeline' not in text.split('_base_', 1)[1], name
            code = [line for line in text.splitlines()
                    if line.strip() and not line.lstrip().startswith('#')]
            assert len(code) <= 30, (folder, name, len(code))


if __name__ == '__main__':
    root = Path(sys.argv[1])
    refs = {p.relative_to(root).as_posix(): data_sections(p)
            for p in config_files(root)}
    Path(sys.argv[2]).write_text(json.dumps(refs, indent=0, sort_keys=True))
    print(f'{len(refs)} configs written to {sys.argv[2]}')
