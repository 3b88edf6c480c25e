# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""``benchmarks/bench_patchcore_fit.py --split converter`` scores exactly
the Magnetic Tile converter's test split and fits on its train-split
normals (checked against a real conversion of a fake tree)."""
import importlib.util
import json
from argparse import Namespace
from pathlib import Path

import numpy as np

from data_converters.base import get_converter, run_conversion
from tests.test_data_converters.fake_layouts import gray, write_img

BENCH = Path(__file__).parents[3] / 'benchmarks' / 'bench_patchcore_fit.py'


def _bench():
    spec = importlib.util.spec_from_file_location('bench_patchcore_fit',
                                                  BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fake_tree(root: Path) -> Path:
    k = 0
    for cls, n in (('Blowhole', 6), ('Break', 5), ('Crack', 5), ('Fray', 5),
                   ('Uneven', 5), ('Free', 12)):
        for i in range(n):
            k += 1
            d = root / f'MT_{cls}' / 'Imgs'
            write_img(d / f'exp{i}_num_{k}.jpg', gray(12, 10, k))
            m = np.zeros((12, 10), np.uint8)
            if cls != 'Free':
                m[2:5, 3:6] = 255
            write_img(d / f'exp{i}_num_{k}.png', m)
    return root


def test_converter_split_matches_conversion(tmp_path):
    root = _fake_tree(tmp_path / 'mt')
    out = tmp_path / 'out'
    run_conversion(get_converter('magnetic_tile')(root), out, progress=False)

    def names(split, normal=None):
        d = json.loads((out / 'annotations' / f'{split}.json').read_text())
        return sorted(i['file_name'] for i in d['images']
                      if normal is None or i['is_normal'] == normal)

    bench = _bench()
    args = Namespace(split='converter', test_per_class=2, defect_classes=[
        'MT_Blowhole', 'MT_Break', 'MT_Crack', 'MT_Fray', 'MT_Uneven'
    ])
    train, test, masks = bench.select_images(root, args)
    rel = [str(p.relative_to(root)) for p in test]
    assert sorted(rel) == names('test')
    assert sorted(str(p.relative_to(root)) for p in train) == names(
        'train', normal=True)
    assert [m is None for m in masks] == ['MT_Free' in r for r in rel]
    assert {r.split('/')[0] for r in rel} == {
        'MT_Blowhole', 'MT_Break', 'MT_Crack', 'MT_Fray', 'MT_Uneven',
        'MT_Free'
    }  # every class reaches the test split of this tree
    assert all(m.shape == (12, 10) and m.sum() == 9 for m in masks
               if m is not None)
    # a documented subset: the test split without MT_Uneven
    args.defect_classes = ['MT_Blowhole', 'MT_Break', 'MT_Crack', 'MT_Fray']
    _, test4, _ = bench.select_images(root, args)
    assert sorted(str(p.relative_to(root)) for p in test4) == [
        n for n in names('test') if not n.startswith('MT_Uneven')
    ]
