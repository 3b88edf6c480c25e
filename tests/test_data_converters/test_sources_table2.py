# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Ways in for the rest of Table 2: the TIG Al 5083 source converter and the
example configs of data_converters/examples/, on fake trees in the
published layouts."""
import json
import os
from pathlib import Path

import pytest

from data_converters import convert as cli
from data_converters.base import ConversionError
from tests.test_data_converters.sources_fakes import (convert, count, names,
                                                      write_img, write_voc)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / 'data_converters' / 'examples'


def _tig_tree(root: Path) -> Path:
    """al5083/{train,test}/<run>/<frame>.png + train/train.json,
    test/test.json; frame names repeat across runs."""
    train = {'170906-141809-Al 2mm-part1/10-00.png': 0,
             '170906-141809-Al 2mm-part1/10-01.png': 0,
             '170906-144958-Al 2mm/10-00.png': 1,
             '170815-133921-Al 2mm/10-00.png': 2,
             '170913-152931-Al 2mm-part2/10-00.png': 5}
    test = {'170904-141730-Al 2mm-part1/20-00.png': 0,
            '170905-115602-Al 2mm/20-00.png': 4}
    for split, d in (('train', train), ('test', test)):
        for rel in d:
            write_img(root / split / rel, 20, 24, gray=True)
        (root / split / f'{split}.json').write_text(json.dumps(d))
    return root


def test_tig_al5083(tmp_path):
    root = _tig_tree(tmp_path / 'al5083')
    cocos = convert('tig_al5083', root, tmp_path / 'out')
    assert set(cocos) == {'train', 'test'}
    assert names(cocos['train']) == {1: 'burn through', 2: 'contamination',
                                     3: 'lack of fusion', 4: 'misalignment',
                                     5: 'lack of penetration'}
    assert count({'t': cocos['train']}, normal=True) == 2
    assert count({'t': cocos['test']}, normal=True) == 1
    labels = {i['file_name']: i['image_label']
              for c in cocos.values() for i in c.dataset['images']}
    assert labels['train/170913-152931-Al 2mm-part2/10-00.png'] == 5
    assert labels['test/170905-115602-Al 2mm/20-00.png'] == 4
    assert not any(c.dataset['annotations'] for c in cocos.values())
    cats = json.loads((tmp_path / 'out' / 'categories.json').read_text())
    assert cats[4]['defect_type'] == 'incomplete penetration'
    assert cats[0]['product'] == 'tig weld seam'


def test_tig_al5083_errors(tmp_path):
    root = _tig_tree(tmp_path / 'al5083')
    (root / 'test' / 'test.json').write_text('{"a/b.png": 6}')
    with pytest.raises(ConversionError, match=r"test.json: 'a/b.png': class "
                       r'id 6 is not in 0..5'):
        convert('tig_al5083', root, tmp_path / 'o')
    (root / 'test' / 'test.json').write_text('[1, 2]')
    with pytest.raises(ConversionError, match='expected a non-empty JSON'):
        convert('tig_al5083', root, tmp_path / 'o')
    (root / 'test' / 'test.json').unlink()
    with pytest.raises(ConversionError,
                       match='test.json: label file not found'):
        convert('tig_al5083', root, tmp_path / 'o')
    with pytest.raises(ConversionError, match='no train/ or test/'):
        convert('tig_al5083', tmp_path, tmp_path / 'o')
    assert not (tmp_path / 'o').exists()


def _example(name):
    return cli.load_config(str(EXAMPLES / name))


def test_example_concrete_crack(tmp_path):
    root = tmp_path / 'concrete'
    for i in range(3):
        write_img(root / 'Positive' / f'{i + 1:05d}.jpg')
        write_img(root / 'Negative' / f'{i + 1:05d}.jpg')
    from data_converters.convert import convert as run
    s = run('generic', str(root), str(tmp_path / 'out'),
            config=_example('concrete_crack_classification.yaml'),
            progress=False)
    assert s['num_images'] == 6 and s['num_normal'] == 3
    cats = json.loads((tmp_path / 'out' / 'categories.json').read_text())
    assert [(c['name'], c['defect_type'], c['product']) for c in cats] == [
        ('Positive', 'concrete crack', 'concrete wall')]


def test_example_voc2007_style(tmp_path):
    root = tmp_path / 'VOC2007'
    for i, objs in enumerate([[('crack', 2, 2, 10, 9)], [],
                              [('pit', 1, 1, 5, 5), ('crack', 8, 8, 20, 16)]]):
        write_img(root / 'JPEGImages' / f'{i:06d}.jpg', 32, 40)
        write_voc(root / 'Annotations' / f'{i:06d}.xml', f'{i:06d}.jpg', 40,
                  32, objs)
    sets = root / 'ImageSets' / 'Main'
    sets.mkdir(parents=True)
    (sets / 'train.txt').write_text('000000\n000001\n')
    (sets / 'test.txt').write_text('000002\n')
    from data_converters.convert import convert as run
    s = run('generic', str(root), str(tmp_path / 'out'),
            config=_example('voc2007_style.yaml'), progress=False)
    assert s['splits'] == {'train': 2, 'test': 1}
    assert s['num_annotations'] == 3 and s['num_normal'] == 1


def test_example_coco_export(tmp_path):
    root = tmp_path / 'export'
    cats = [{'id': 0, 'name': 'gear-defects', 'supercategory': 'none'},
            {'id': 1, 'name': 'pitting', 'supercategory': 'gear-defects'}]
    for split in ('train', 'valid'):
        write_img(root / split / f'{split}_0.jpg', 32, 40)
        write_img(root / split / f'{split}_1.jpg', 32, 40)
        d = {'images': [{'id': 0, 'file_name': f'{split}_0.jpg',
                         'width': 40, 'height': 32},
                        {'id': 1, 'file_name': f'{split}_1.jpg',
                         'width': 40, 'height': 32}],
             'annotations': [{'id': 0, 'image_id': 0, 'category_id': 1,
                              'bbox': [3, 4, 10, 6], 'segmentation': [],
                              'area': 60, 'iscrowd': 0}],
             'categories': cats}
        (root / split / '_annotations.coco.json').write_text(json.dumps(d))
    cfg = dict(_example('coco_export.yaml'),
               normal_categories=['gear-defects'])
    from data_converters.convert import convert as run
    s = run('generic', str(root), str(tmp_path / 'out'), config=cfg,
            progress=False)
    assert s['splits'] == {'train': 2, 'val': 2} and s['num_normal'] == 2
    cats = json.loads((tmp_path / 'out' / 'categories.json').read_text())
    assert [c['name'] for c in cats] == ['pitting']


def test_readme_lists_every_converter():
    from data_converters.base import list_converters
    text = (REPO / 'data_converters' / 'README.md').read_text()
    missing = [n for n in list_converters() if f'`{n}`' not in text]
    assert not missing, f'data_converters/README.md lacks {missing}'
    for name in os.listdir(EXAMPLES):
        assert name in text, name
