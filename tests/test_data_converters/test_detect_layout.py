# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Layout detection (``data_converters/detect_layout.py``) and the demo's
converter command for ``--data DIR`` (no training)."""
import json
from pathlib import Path

import pytest

from data_converters.base import list_converters
from data_converters.detect_layout import (LAYOUTS, detect_sources,
                                           layout_summary)

from ..demo_tool import load_demo_tool

REPO = Path(__file__).resolve().parents[2]


def _touch(root: Path, *rels: str) -> Path:
    for rel in rels:
        p = root / rel
        if rel.endswith('/'):
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b'x')
    return root


#: one minimal tree per layout: the entries its published layout has
TREES = {
    'magnetic_tile': ['MT_Crack/Imgs/a.jpg', 'MT_Free/Imgs/b.jpg'],
    'neu_det': ['IMAGES/crazing_1.jpg', 'ANNOTATIONS/crazing_1.xml'],
    'elpv': ['labels.csv', 'images/cell0001.png'],
    'kolektorsdd': ['kos01/Part0.jpg', 'kos01/Part0_label.bmp'],
    'kolektorsdd2': ['train/10000.png', 'train/10000_GT.png', 'test/'],
    'mvtec_ad': ['bottle/train/good/000.png',
                 'bottle/ground_truth/broken_large/000_mask.png'],
    'mvtec_ad2': ['can/train/good/0.png', 'can/test_public/bad/0.png'],
    'btad': ['01/train/ok/0000.bmp', '01/test/ko/0000.bmp'],
    'visa': ['split_csv/1cls.csv', 'candle/Data/Images/Normal/0.JPG'],
    'dagm2007': ['Class1/Train/0001.PNG', 'Class1/Train/Label/Labels.txt'],
    'pcb': ['images/Missing_hole/01.jpg', 'Annotations/Missing_hole/01.xml'],
    'deeppcb': ['PCBData/trainval.txt', 'PCBData/group00041/'],
    'wm811k': ['LSWMD.pkl'],
    'sdnet2018': ['D/CD/1.jpg', 'D/UD/2.jpg'],
    'tianchi_aluminum': ['无瑕疵样本/a.jpg', '瑕疵样本/擦花/b.jpg'],
    'tianchi_fabric': ['defect_Images/a.jpg', 'Annotations/anno_train.json'],
    'gc10_det': ['1/img_01.jpg', 'lable/img_01.xml'],
    'ssgd': ['images_lb101/0001.jpg', 'annotations/lb101/train1.json'],
    'tig_al5083': ['train/train.json', 'test/test.json', 'train/run/0.png'],
    'voc': ['JPEGImages/a.jpg', 'Annotations/a.xml'],
    'yolo': ['images/train/a.jpg', 'labels/train/a.txt'],
}


@pytest.mark.parametrize('source', sorted(TREES))
def test_each_layout_is_detected_alone(tmp_path, source):
    root = _touch(tmp_path / source, *TREES[source])
    assert detect_sources(root) == [source]


def test_coco_and_baijiu(tmp_path):
    root = _touch(tmp_path / 'b', 'images/img_0000001.jpg')
    (root / 'annotations.json').write_text(json.dumps(
        {'images': [], 'categories': [{'id': 0, 'name': '背景'}]}),
        encoding='utf-8')
    assert detect_sources(root) == ['tianchi_baijiu']
    (root / 'annotations.json').write_text(json.dumps(
        {'images': [], 'categories': [{'id': 1, 'name': 'crack'}]}))
    assert detect_sources(root) == ['coco']


def test_unknown_and_ambiguous(tmp_path):
    assert detect_sources(_touch(tmp_path / 'x', 'a/b.png')) == []
    both = _touch(tmp_path / 'y', *TREES['magnetic_tile'], *TREES['wm811k'])
    assert detect_sources(both) == ['magnetic_tile', 'wm811k']


def test_every_layout_names_a_registered_converter():
    known = set(list_converters())
    assert {n for n, _, _ in LAYOUTS} <= known
    summary = layout_summary()
    assert all(f'  {n} ' in summary for n, _, _ in LAYOUTS)


# ---- tools/demo.py: converter command for --data DIR -------------------
def _demo():
    return load_demo_tool()


def test_demo_passes_dataset_yaml(tmp_path):
    demo = _demo()
    root = _touch(tmp_path / 'ds', 'images/crack/0.bmp', 'masks/crack/0.png')
    (root / 'dataset.yaml').write_text('image_dir: images\nmask_dir: masks\n')
    source, args = demo.converter_args(root, None)
    assert source == 'folder'
    assert args == ['folder', '--root', root, '--config',
                    root / 'dataset.yaml']
    (root / 'dataset.yaml').write_text('format: voc\n')
    assert demo.converter_args(root, None)[0] == 'generic'
    # an explicit --source still gets the yaml
    source, args = demo.converter_args(root, 'voc')
    assert args[-2:] == ['--config', root / 'dataset.yaml']


def test_demo_detects_or_lists_sources(tmp_path):
    demo = _demo()
    root = _touch(tmp_path / 'KolektorSDD', *TREES['kolektorsdd'])
    assert demo.converter_args(root, None) == (
        'kolektorsdd', ['kolektorsdd', '--root', root])
    both = _touch(tmp_path / 'y', *TREES['magnetic_tile'], *TREES['voc'])
    with pytest.raises(SystemExit, match='fits several converters: '
                       'magnetic_tile, voc; pass --source'):
        demo.converter_args(both, None)
    with pytest.raises(SystemExit, match='no known layout(.|\n)*kolektorsdd'):
        demo.converter_args(_touch(tmp_path / 'z', 'a/b.png'), None)
    one = _touch(tmp_path / 'mvtec' / 'bottle', 'train/good/000.png',
                 'test/broken_large/000.png',
                 'ground_truth/broken_large/000_mask.png')
    assert detect_sources(one) == []
    with pytest.raises(SystemExit, match='one mvtec_ad object folder; pass '
                       'its parent'):
        demo.converter_args(one, None)
    with pytest.raises(SystemExit, match='image-level labels only'):
        demo.converter_args(_touch(tmp_path / 'e', *TREES['elpv']), None)


@pytest.mark.parametrize('name', ['magnetic_tile', 'neu_det', 'elpv'])
def test_real_datasets_are_detected(name):
    from tests.conftest import shared_dataset
    assert detect_sources(shared_dataset(name)) == [name]


def test_demo_data_step_single_class_kolektorsdd(tmp_path):
    """The demo's data step on a fake KolektorSDD (one class, ``crack``):
    detection, the converter command it builds, and the open-vocabulary
    split with no novel class (no training)."""
    from data_converters import convert as cli
    from tests.test_data_converters.sources_fakes import (write_img,
                                                          write_mask)
    demo = _demo()
    root = tmp_path / 'KolektorSDD'
    for k in range(1, 7):
        for part in range(2):
            write_img(root / f'kos{k:02d}' / f'Part{part}.jpg', 40, 24,
                      gray=True)
            write_mask(root / f'kos{k:02d}' / f'Part{part}_label.bmp', 40,
                       24, rects=((5, 30, 10, 12, 255), ) if part else ())
    source, args = demo.converter_args(root, None)
    out = tmp_path / 'converted'
    assert cli.main([str(a) for a in args] + [
        '--out-dir', str(out), '--no-progress', '--ratios', '0.5', '0',
        '0.5']) == 0
    split = demo.split_vocabulary(out, None, 0, 0)
    assert split['base'] == ['crack'] and split['novel'] == []
    assert split['all'] == ['crack']
    assert demo.split_vocabulary(out, 'none', 0, 0)['novel'] == []


def test_demo_dataset_yaml_tree_of_issue_13(tmp_path):
    """``images/<class>/*.bmp`` + ``masks/<class>/*.png`` + dataset.yaml:
    the command the demo builds converts masks as masks (before, without
    the yaml, ``images`` and ``masks`` became two classes)."""
    import numpy as np
    from data_converters import convert as cli
    from tests.test_data_converters.fake_layouts import gray
    from tests.test_data_converters.fake_layouts import write_img as put
    demo = _demo()
    root = tmp_path / 'factory'
    for k, cls in enumerate(('crack', 'spot', 'good') * 2):
        put(root / 'images' / cls / f'{k:03d}.bmp', gray(24, 32, k))
        if cls != 'good':
            m = np.zeros((24, 32), np.uint8)
            m[4:12, 6:20] = 255
            put(root / 'masks' / cls / f'{k:03d}.png', m)
    (root / 'dataset.yaml').write_text('image_dir: images\nmask_dir: masks\n'
                                       'normal_classes: [good]\n')
    _, args = demo.converter_args(root, None)
    out = tmp_path / 'out'
    assert cli.main([str(a) for a in args] + ['--out-dir', str(out),
                                              '--no-progress']) == 0
    cats = json.loads((out / 'categories.json').read_text())
    assert [c['name'] for c in cats] == ['crack', 'spot']
    n_img = sum(len(json.loads(p.read_text())['images'])
                for p in (out / 'annotations').glob('*.json'))
    n_ann = sum(len(json.loads(p.read_text())['annotations'])
                for p in (out / 'annotations').glob('*.json'))
    assert (n_img, n_ann) == (6, 4)
