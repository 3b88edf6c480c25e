# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""KolektorSDD, KolektorSDD2 and DAGM 2007 converters on tiny fake datasets
in their native layouts."""
import pytest

from data_converters.base import ConversionError
from tests.test_data_converters.sources_fakes import (convert, count, names,
                                                      write_img, write_mask)


def test_kolektorsdd(tmp_path):
    root = tmp_path / 'KolektorSDD'
    for k in (1, 2, 3):
        for part in range(3):
            write_img(root / f'kos{k:02d}' / f'Part{part}.jpg', 40, 24,
                      gray=True)
            defective = (k, part) in ((1, 0), (2, 2), (3, 1))
            write_mask(root / f'kos{k:02d}' / f'Part{part}_label.bmp', 40, 24,
                       rects=((5, 30, 10, 12, 255), ) if defective else ())
    cocos = convert('kolektorsdd', root, tmp_path / 'out')
    assert count(cocos) == 9 and count(cocos, normal=False) == 3
    anns = [a for c in cocos.values() for a in c.dataset['annotations']]
    assert len(anns) == 3 and all(a['area'] == 25 * 2 for a in anns)
    assert set(next(iter(cocos.values())).dataset['categories'][0]
               ['name'] for _ in [0]) == {'crack'}
    (root / 'kos02' / 'Part1_label.bmp').unlink()
    with pytest.raises(ConversionError, match='Part1_label.bmp'):
        convert('kolektorsdd', root, tmp_path / 'o2')
    # skip mode lists the item instead
    from data_converters.convert import convert as run
    summary = run('kolektorsdd', str(root), str(tmp_path / 'o3'),
                  on_error='skip', progress=False)
    assert summary['num_skipped'] == 1 and summary['num_images'] == 8


def test_kolektorsdd2(tmp_path):
    root = tmp_path / 'KolektorSDD2'
    for split, n in (('train', 3), ('test', 2)):
        for i in range(n):
            write_img(root / split / f'{10000 + i}.png', 36, 20)
            write_mask(root / split / f'{10000 + i}_GT.png', 36, 20,
                       rects=((3, 9, 3, 9, 255), ) if i == 0 else ())
    cocos = convert('kolektorsdd2', root, tmp_path / 'out')
    assert {s: len(c.dataset['images']) for s, c in cocos.items()} == {
        'train': 3, 'test': 2}
    assert [len(c.dataset['annotations']) for c in cocos.values()] == [1, 1]
    write_mask(root / 'test' / '10001_GT.png', 10, 10)
    with pytest.raises(ConversionError, match='10001_GT.png.*differs'):
        convert('kolektorsdd2', root, tmp_path / 'o2')


def _dagm(root, labels_txt=True):
    for k in (1, 10):
        for sub in ('Train', 'Test'):
            folder = root / f'Class{k}' / sub
            rows = ['1']
            for i in range(1, 4):
                write_img(folder / f'{i:04d}.PNG', 32, 32, gray=True)
                bad = i == 2
                if bad:
                    write_mask(folder / 'Label' / f'{i:04d}_label.PNG', 32,
                               32, rects=((10, 20, 8, 24, 255), ))
                rows.append(f'{i}\t{int(bad)}\t{i:04d}.PNG\t0\t' +
                            (f'{i:04d}_label.PNG' if bad else '0'))
            if labels_txt:
                (folder / 'Label').mkdir(exist_ok=True)
                (folder / 'Label' / 'Labels.txt').write_text(
                    '\n'.join(rows) + '\n')
    (root / 'Class1_def').mkdir()  # competition archive leftovers: ignored


def test_dagm2007(tmp_path):
    root = tmp_path / 'DAGM'
    _dagm(root)
    cocos = convert('dagm2007', root, tmp_path / 'out')
    assert {s: len(c.dataset['images']) for s, c in cocos.items()} == {
        'train': 6, 'test': 6}
    assert sorted(names(cocos['train']).values()) == ['Class1', 'Class10']
    for c in cocos.values():
        anns = c.dataset['annotations']
        assert len(anns) == 2 and all(a['area'] == 10 * 16 for a in anns)
        for im in c.dataset['images']:
            assert im['is_normal'] == ('0002' not in im['file_name'])
    # Labels.txt says defective but the mask is gone
    (root / 'Class10' / 'Test' / 'Label' / '0002_label.PNG').unlink()
    with pytest.raises(ConversionError, match='Labels.txt.*0002.PNG'):
        convert('dagm2007', root, tmp_path / 'o2')


def test_dagm2007_without_labels_txt(tmp_path):
    root = tmp_path / 'DAGM'
    _dagm(root, labels_txt=False)
    cocos = convert('dagm2007', root, tmp_path / 'out')
    assert count(cocos, normal=False) == 4
