# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Config-driven generic converters (folder, VOC, YOLO, YOLO-seg, LabelMe)
and the command line."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from pycocotools.coco import COCO

from data_converters import convert as cli
from data_converters.base import ConversionError, rle_to_mask
from tests.test_data_converters.fake_layouts import (make_folder_dataset,
                                                     make_labelme_dataset,
                                                     make_voc_dataset,
                                                     make_yolo_dataset,
                                                     truncate, write_img)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def run(fmt, root, out, config=None, **kw):
    return cli.convert(fmt, str(root), str(out), config=config,
                       progress=False, **kw)


def coco(out, split):
    return COCO(str(out / 'annotations' / f'{split}.json')).dataset


@pytest.mark.parametrize('mode', ['dir', 'suffix'])
def test_folder_with_masks_and_native_splits(tmp_path, mode):
    root = make_folder_dataset(tmp_path / 'ds', mode)
    cfg = {'source': 'my_factory', 'image_dir': 'images',
           'product': 'gear', 'material': 'steel', 'license': 'internal'}
    if mode == 'dir':
        cfg['mask_dir'] = 'masks'
    else:
        cfg['mask_suffix'] = '_mask.png'
    s = run('folder', root, tmp_path / 'out', cfg)
    assert s['splits'] == {'train': 6, 'test': 6} and s['num_normal'] == 4
    d = coco(tmp_path / 'out', 'test')
    assert [c['name'] for c in d['categories']] == ['dent', 'scratch']
    assert d['categories'][0]['product'] == 'gear'
    assert d['categories'][0]['defect_type'] == 'dent'
    for im in d['images']:
        assert im['file_name'].startswith('images/test/')
        assert im['source'] == 'my_factory' and im['license'] == 'internal'
        assert im['caption'].startswith('Gear made of steel with')
        assert not im['file_name'].endswith('_mask.png')
    scr = [a for a in d['annotations'] if a['category_id'] == 2]
    assert len(scr) == 2 and all(a['area'] == 70 for a in scr)
    assert all(rle_to_mask(a['segmentation']).sum() == 70 for a in scr)
    im = {i['id']: i for i in d['images']}
    assert all('horizontal' in im[a['image_id']]['caption'] for a in scr)


def test_folder_classification_only_and_seeded_split(tmp_path):
    root = make_folder_dataset(tmp_path / 'ds', 'none')
    cfg = {'image_dir': 'images/train', 'classes': ['scratch', 'dent']}
    s = run('folder', root, tmp_path / 'out', cfg, ratios=[0.5, 0, 0.5])
    assert s['num_annotations'] == 0 and s['num_images'] == 6
    assert set(s['splits']) == {'train', 'test'}
    ims = coco(tmp_path / 'out', 'train')['images'] + coco(
        tmp_path / 'out', 'test')['images']
    labels = sorted(i['image_label'] for i in ims if not i['is_normal'])
    assert labels == [1, 1, 2, 2]


def test_folder_bad_inputs(tmp_path):
    root = make_folder_dataset(tmp_path / 'ds', 'dir')
    cfg = {'image_dir': 'images', 'mask_dir': 'masks'}
    m = root / 'masks' / 'train' / 'dent' / '000.png'
    write_img(m, np.zeros((32, 48), np.uint8))  # empty mask
    with pytest.raises(ConversionError, match='000.png: empty mask'):
        run('folder', root, tmp_path / 'o', cfg)
    s = run('folder', root, tmp_path / 'o',
            dict(cfg, empty_mask='image_label'))
    assert s['num_skipped'] == 0 and s['num_annotations'] == 7
    # unknown class folder when classes are given
    with pytest.raises(ConversionError, match="unknown class name 'scratch'"):
        run('folder', root, tmp_path / 'o2', dict(cfg, classes=['dent']))
    truncate(root / 'images' / 'test' / 'good' / '000.png', 0.7)
    s = run('folder', root, tmp_path / 'o3', dict(cfg, classes=['dent']),
            on_error='skip')
    rep = json.loads((tmp_path / 'o3' / 'skipped.json').read_text())
    # 4 scratch images, the truncated image and the empty mask
    assert s['num_skipped'] == len(rep) == 6
    assert {r['reason'].split(' ')[0] for r in rep} == {'unknown',
                                                         'truncated', 'empty'}


def test_voc(tmp_path):
    root = make_voc_dataset(tmp_path / 'voc')
    s = run('voc', root, tmp_path / 'out', {'classes': ['scratch', 'dent']})
    assert s['splits'] == {'train': 2, 'test': 2} and s['num_normal'] == 1
    d = coco(tmp_path / 'out', 'train')
    assert [c['name'] for c in d['categories']] == ['scratch', 'dent']
    a = sorted(d['annotations'], key=lambda a: a['id'])
    assert [x['category_id'] for x in a] == [2, 2, 1]
    assert a[2]['attributes']['difficult'] == 1
    assert a[0]['bbox'] == [5.0, 5.0, 15.0, 25.0]
    with pytest.raises(ConversionError, match="unknown class name"):
        run('voc', root, tmp_path / 'o2', {'classes': ['dent']})


def test_voc_and_labelme_broken_files_are_skippable(tmp_path):
    root = make_voc_dataset(tmp_path / 'voc')
    (root / 'Annotations' / 'img2.xml').write_text('<annotation><obj')
    with pytest.raises(ConversionError, match=r'img2\.xml: cannot parse'):
        run('voc', root, tmp_path / 'o1')
    s = run('voc', root, tmp_path / 'o2', on_error='skip')
    assert s['num_skipped'] == 1 and s['num_images'] == 3
    lm = make_labelme_dataset(tmp_path / 'lm')
    (lm / 'data' / 'b.json').write_text('{"shapes": [')
    s = run('labelme', lm, tmp_path / 'o3', {'image_dir': 'data'},
            on_error='skip')
    rep = json.loads((tmp_path / 'o3' / 'skipped.json').read_text())
    assert s['num_images'] == 2 and rep[0]['path'].endswith('b.json')


@pytest.mark.parametrize('seg', [False, True])
def test_yolo_and_yolo_seg(tmp_path, seg):
    root = make_yolo_dataset(tmp_path / 'y', seg)
    fmt = 'yolo_seg' if seg else 'yolo'
    s = run(fmt, root, tmp_path / 'out', {'classes': ['dent', 'scratch']})
    assert s['splits'] == {'train': 3, 'val': 3} and s['num_normal'] == 2
    d = coco(tmp_path / 'out', 'val')
    a = sorted(d['annotations'], key=lambda a: a['id'])
    assert [x['category_id'] for x in a] == [1, 2]
    if seg:
        assert isinstance(a[0]['segmentation'], dict)
        assert a[0]['bbox'] == [4.0, 4.0, 17.0, 13.0]
    else:
        assert a[0]['bbox'] == [15.0, 10.0, 10.0, 20.0]
        assert a[0]['attributes']['box_only']
    with pytest.raises(ConversionError, match='unknown class id 1'):
        run(fmt, root, tmp_path / 'o2', {'classes': ['dent']})
    with pytest.raises(ConversionError, match=r'im2\.txt: missing label'):
        run(fmt, root, tmp_path / 'o3', {'classes': ['dent', 'scratch'],
                                         'missing_label': 'error'})


def test_labelme(tmp_path):
    root = make_labelme_dataset(tmp_path / 'lm')
    s = run('labelme', root, tmp_path / 'out', {'image_dir': 'data'},
            ratios=[1, 0, 0])
    assert s['num_images'] == 3 and s['num_normal'] == 1
    d = coco(tmp_path / 'out', 'train')
    assert [c['name'] for c in d['categories']] == ['dent', 'scratch']
    kinds = sorted((x['category_id'], isinstance(x['segmentation'], dict))
                   for x in d['annotations'])
    assert kinds == [(1, False), (1, True), (2, True)]
    assert {i['file_name'] for i in d['images']} == {
        'data/a.png', 'data/b.png', 'data/c.png'}


def test_cli_script_runs_standalone():
    # the script finds its package from any cwd (no imdd_mm import needed)
    r = subprocess.run([sys.executable,
                        os.path.join(REPO, 'data_converters', 'convert.py'),
                        '--help'], cwd='/', capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and '--on-error' in r.stdout


def test_cli_main_with_yaml_config(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / 'ds', 'dir')
    cfg = tmp_path / 'cfg.yaml'
    cfg.write_text('format: folder\nimage_dir: images\nmask_dir: masks\n'
                   'source: line3\n')
    out = tmp_path / 'out'
    argv = ['generic', '--root', str(root), '--config', str(cfg),
            '--nproc', '2', '--no-progress']
    assert cli.main(argv + ['--out-dir', str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['num_images'] == 12 and summary['num_skipped'] == 0
    assert sorted(os.listdir(out)) == ['annotations', 'captions.jsonl',
                                       'categories.json', 'skipped.json']
    assert coco(out, 'train')['images'][0]['source'] == 'line3'
    # a bad file: exit code 1, the file named on stderr, nothing written
    truncate(root / 'images' / 'train' / 'dent' / '001.png', 0.7)
    assert cli.main(argv + ['--out-dir', str(tmp_path / 'o2')]) == 1
    assert 'dent/001.png: truncated PNG' in capsys.readouterr().err
    assert not (tmp_path / 'o2').exists()
    # skip mode: listed in the report, the rest converted
    assert cli.main(argv + ['--out-dir', str(tmp_path / 'o3'),
                            '--on-error', 'skip']) == 0
    rep = json.loads((tmp_path / 'o3' / 'skipped.json').read_text())
    assert [r['item'] for r in rep] == ['images/train/dent/001.png']
    # bad config
    bad = tmp_path / 'bad.yaml'
    bad.write_text('format: nope\n')
    assert cli.main(['generic', '--root', str(root), '--out-dir',
                     str(tmp_path / 'o4'), '--config', str(bad)]) == 1
    assert "needs config \"format\"" in capsys.readouterr().err


@pytest.mark.parametrize('name', sorted(os.listdir(
    os.path.join(REPO, 'data_converters', 'examples'))))
def test_example_configs_parse(name):
    cfg = cli.load_config(os.path.join(REPO, 'data_converters', 'examples',
                                       name))
    assert cfg['format'] in ('folder', 'voc', 'yolo', 'yolo_seg', 'labelme',
                             'coco')
    assert cfg['source']


def test_example_folder_config_converts(tmp_path):
    root = make_folder_dataset(tmp_path / 'ds', 'dir')
    cfg = cli.load_config(os.path.join(REPO, 'data_converters', 'examples',
                                       'folder_with_masks.yaml'))
    s = run('generic', root, tmp_path / 'out', cfg)
    assert s['num_images'] == 12 and s['num_annotations'] == 8
    cats = json.loads((tmp_path / 'out' / 'categories.json').read_text())
    assert [(c['name'], c['product'], c['defect_type']) for c in cats] == [
        ('dent', 'gear', 'dent'), ('scratch', 'gear', 'scratch')]
