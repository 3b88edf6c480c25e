# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""``tools/test.py --tta`` runs end to end on the tiny model (it crashed
in mmdet's DetTTAModel before): generated surfaces converted by the folder
converter, a random tiny checkpoint, with and without TTA; the dumped TTA
predictions keep the original image size and differ from the plain ones."""
import pickle

import numpy as np
import pytest

from ..tiny_stage2 import TINY_STAGE2_CONFIG, save_tiny_stage2_checkpoint
from ._runner import run_tool


@pytest.mark.slow
def test_tools_test_tta(tmp_path):
    from data_converters.convert import main as convert
    from imdd_mm.datasets.synthetic_surfaces import write_surface_dataset
    src = tmp_path / 'src'
    cfg = write_surface_dataset(src, dict(test=1), size=48, seed=5)
    coco = tmp_path / 'coco'
    assert convert(['folder', '--root', str(src), '--config', str(cfg),
                    '--out-dir', str(coco), '--no-progress']) == 0
    ann = coco / 'annotations' / 'test.json'
    config = tmp_path / 'tiny_tta.py'
    config.write_text(f'''_base_ = {TINY_STAGE2_CONFIG!r}
test_dataloader = dict(dataset=dict(
    data_root={str(src) + '/'!r}, ann_file={str(ann)!r},
    data_prefix=dict(img='')))
test_evaluator = [dict(type='IMDDClassificationMetric'),
                  dict(type='DefectSegMetric')]
''')
    ckpt = save_tiny_stage2_checkpoint(tmp_path / 'tiny.pth')
    preds = {}
    for name, extra in (('plain', []), ('tta', ['--tta'])):
        out = tmp_path / f'{name}.pkl'
        proc = run_tool(['tools/test.py', config, ckpt, '--work-dir',
                         tmp_path / name, '--out', out] + extra,
                        timeout=900)
        assert 'seg/f1' in proc.stdout + proc.stderr
        with open(out, 'rb') as f:
            preds[name] = pickle.load(f)
    assert len(preds['plain']) == len(preds['tta']) == 5  # 4 defects + good
    differ = 0
    for plain, tta in zip(preds['plain'], preds['tta']):
        assert plain['img_path'] == tta['img_path']
        assert tta['flip'] is False  # the un-flipped view carries results
        a = plain['pred_score_map']['data'].numpy()
        b = tta['pred_score_map']['data'].numpy()
        assert a.shape == b.shape == (1, 48, 48)
        assert 0.0 <= b.min() and b.max() <= 1.0
        differ += int(np.abs(a - b).max() > 1e-4)
    assert differ == 5
