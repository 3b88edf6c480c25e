# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The dataset bases in mmdet's inheritance style resolve to exactly the
data settings the configs had before the refactor.

``tests/data/config_data_sections.json`` holds, for every config of the
repository on main at commit 43812cf (before the shared bases), its
resolved data sections (pipelines, dataloaders, evaluators, data paths).
Regenerate it from that commit's configs (`git archive 43812cf configs`) with
``python tests/test_configs/test_config_inheritance.py CONFIGS_DIR OUT``.
A config whose other files (outside the refactored dataset bases) changed
since carries another fingerprint and is skipped.
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


#: the files the refactor rewrote (and the shared bases it added)
REFACTORED = ('_base_/datasets/', 'baselines/yolov8/_base_/datasets/')
#: files that hold no data settings (model and schedule bases): their later
#: edits do not change what is compared, so they stay out of the fingerprint
NO_DATA = ('_base_/models/', '_base_/schedules/', '_base_/default_runtime.py')


def config_chain(path: Path) -> list:
    """The config and every file it inherits from (recursively)."""
    from mmengine.config import Config
    seen, todo = [], [path.resolve()]
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.append(file)
        for base in Config._get_base_files(str(file)):
            if '::' not in base:  # upstream (mmdet::) bases are pinned
                todo.append((file.parent / base).resolve())
    return sorted(seen)


def chain_fingerprint(path: Path, configs_root: Path) -> str:
    """sha256 of the chain's files other than the refactored ones: when it
    differs from the reference's, someone else changed the config since
    and its data sections are not this refactor's to compare."""
    import hashlib
    digest = hashlib.sha256()
    for file in config_chain(path):
        rel = file.relative_to(configs_root.resolve()).as_posix()
        if rel.startswith(REFACTORED + NO_DATA):
            continue
        digest.update(rel.encode() + b'\0' + file.read_bytes() + b'\0')
    return digest.hexdigest()


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
    compared = []
    for rel, expected in sorted(reference.items()):
        path = REPO / 'configs' / rel
        if not path.is_file() or chain_fingerprint(
                path, REPO / 'configs') != expected['fingerprint']:
            continue  # removed or changed by other work since
        assert data_sections(path) == expected['sections'], rel
        compared.append(rel)
    # the dataset bases and most configs inheriting them were compared
    assert len(compared) >= 40, len(compared)
    for rel in ('_base_/datasets/magnetic_tile.py', '_base_/datasets/visa.py',
                '_base_/datasets/neu_det.py', '_base_/datasets/mvtec_ad.py',
                'imdd/stage2_neu_det.py',
                'baselines/yolov8/_base_/datasets/magnetic_tile.py',
                'baselines/yolov8/yolov8_m_neu_det.py'):
        assert rel in compared, rel


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
    refs = {
        p.relative_to(root).as_posix(): dict(
            fingerprint=chain_fingerprint(p, root),
            sections=data_sections(p))
        for p in config_files(root)
    }
    Path(sys.argv[2]).write_text(json.dumps(refs, indent=0, sort_keys=True))
    print(f'{len(refs)} configs written to {sys.argv[2]}')
