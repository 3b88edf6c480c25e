# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Source converters on fake trees in the layouts the publishers (and the
popular re-uploads) really ship, with their quirks: Chinese folder names,
byte-order marks, misspelt labels, duplicates, Python-2 pickles, nested
archives. Every bad input gives a clear error or a skip-report entry."""
import json
import pickle
import struct

import cv2
import numpy as np
import pytest

from data_converters.base import ConversionError
from data_converters.convert import convert as run
from tests.test_data_converters.sources_fakes import (convert, count, names,
                                                      write_img, write_mask,
                                                      write_voc)


def _skipped(out):
    return json.loads((out / 'skipped.json').read_text(encoding='utf-8'))


def _images(cocos):
    return {im['file_name']: im for c in cocos.values()
            for im in c.dataset['images']}


# --------------------------------------------------------------------------
# steel pipe weld: YOLO ids follow the dataset README
# --------------------------------------------------------------------------
def test_steel_pipe_weld_yolo_id_order(tmp_path):
    readme = ['air-hole', 'bite-edge', 'broken-arc', 'crack', 'hollow-bead',
              'overlap', 'slag-inclusion', 'unfused']
    root = tmp_path / 'weld'
    for cid in range(8):
        write_img(root / 'images' / f'w{cid}.jpg', 20, 40, gray=True)
        (root / 'labels').mkdir(parents=True, exist_ok=True)
        (root / 'labels' / f'w{cid}.txt').write_text(
            f'{cid} 0.5 0.5 0.25 0.5\n')
    cocos = convert('steel_pipe_weld', root, tmp_path / 'out',
                    config={'format': 'yolo'})
    for c in cocos.values():
        cats = names(c)
        for a in c.dataset['annotations']:
            fn = c.imgs[a['image_id']]['file_name']
            assert cats[a['category_id']] == readme[int(fn[-5])], fn
    assert list(names(next(iter(cocos.values()))).values()) == readme


# --------------------------------------------------------------------------
# WM-811K: the Python-2 pickle of pandas < 0.20
# --------------------------------------------------------------------------
class _As0_19:
    """An object as pandas 0.19 pickled it (protocol 2: ``NEWOBJ`` of
    ``cls`` + ``BUILD`` of ``state``)."""

    def __init__(self, cls, state):
        self.cls, self.state = cls, state

    @property
    def __class__(self):
        return self.cls


class _Py2Pickler(pickle._Pickler):
    """Writes what Python 2 wrote: ``bytes`` as ``str`` opcodes (numpy
    buffers that need ``encoding='latin1'``), old-style objects."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack('<i', n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes

    def reducer_override(self, obj):
        import copyreg
        if isinstance(obj, _As0_19):
            return (copyreg.__newobj__, (obj.cls, ), obj.state)
        return NotImplemented


def _lswmd_0_19(rows) -> bytes:
    """A DataFrame pickled the way LSWMD.pkl is: Python 2, pandas 0.19
    (``pandas.indexes.*`` modules, the "0.14.1" BlockManager state)."""
    import io

    import pandas as pd
    from pandas.core.indexes.base import _new_Index
    from pandas.core.internals import BlockManager
    names = list(rows[0])
    values = np.empty((len(names), len(rows)), object)
    for j, row in enumerate(rows):
        for i, c in enumerate(names):
            values[i, j] = row[c]
    axes = [_new_Index(pd.Index, {'data': np.array(names, object),
                                  'name': None}),
            pd.RangeIndex(0, len(rows))]
    mgr = _As0_19(BlockManager, ([], [], [], {'0.14.1': {
        'axes': axes,
        'blocks': [{'values': values, 'mgr_locs': np.arange(len(names))}]
    }}))
    frame = _As0_19(pd.DataFrame, {'_data': mgr, '_typ': 'dataframe',
                                   '_metadata': []})
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(frame)
    data = buf.getvalue()
    for new, old in ((b'cpandas.core.indexes.base\n',
                      b'cpandas.indexes.base\n'),
                     (b'cpandas.core.indexes.range\n',
                      b'cpandas.indexes.range\n'),
                     (b'cpandas\nIndex\n', b'cpandas.indexes.base\nIndex\n'),
                     (b'cpandas\nRangeIndex\n',
                      b'cpandas.indexes.range\nRangeIndex\n'),
                     (b'cpandas\nDataFrame\n',
                      b'cpandas.core.frame\nDataFrame\n'),
                     (b'cnumpy._core.multiarray\n',
                      b'cnumpy.core.multiarray\n')):
        data = data.replace(new, old)
    return data


def test_wm811k_reads_python2_pandas_pickle(tmp_path):
    pd = pytest.importorskip('pandas')
    from tests.test_data_converters.test_sources_misc import _wafer_rows
    rows = _wafer_rows()
    rows[0]['waferMap'] = np.full((20, 25), 2, np.uint8)  # non-ASCII bytes
    data = _lswmd_0_19(rows)
    assert b'cpandas.indexes.base\n' in data
    assert b'pandas.core.indexes' not in data
    root = tmp_path / 'wm'
    root.mkdir()
    (root / 'LSWMD.pkl').write_bytes(data)
    with pytest.raises(ModuleNotFoundError, match='pandas.indexes'):
        pd.read_pickle(root / 'LSWMD.pkl')  # what pandas 3 alone does
    from data_converters.sources.wm811k import load_legacy_pickle
    back = load_legacy_pickle(root / 'LSWMD.pkl')
    assert list(back.columns) == list(rows[0]) and len(back) == len(rows)
    assert np.array_equal(back['waferMap'][0], rows[0]['waferMap'])
    cocos = convert('wm811k', root, tmp_path / 'out')
    assert count(cocos) == 4 and count(cocos, normal=True) == 1
    png = cv2.imread(str(root / sorted(_images(cocos))[0]),
                     cv2.IMREAD_UNCHANGED)
    assert png.shape == (20, 25) and (png == 255).all()
    (root / 'LSWMD.pkl').write_bytes(b'not a pickle')
    with pytest.raises(ConversionError, match='LSWMD.pkl: cannot read'):
        convert('wm811k', root, tmp_path / 'o2')


# --------------------------------------------------------------------------
# Tianchi aluminium
# --------------------------------------------------------------------------
ROUND1 = ('不导电', '擦花', '横条压凹', '桔皮', '漏底', '碰伤', '起坑', '凸粉',
          '涂层开裂', '脏点')
OTHERS = ('划伤', '变形', '驳口', '打白点', '铝屑')


def test_tianchi_aluminum_round1_layout(tmp_path):
    root = tmp_path / 'guangdong_round1_train2_20180916'
    for i in range(2):
        write_img(root / '无瑕疵样本' / f'无瑕疵20180830{i}对照样本.jpg')
    for cls in ROUND1:
        write_img(root / '瑕疵样本' / cls / f'{cls}20180901对照样本.jpg')
    for cls in OTHERS + ('未知瑕疵', ):
        write_img(root / '瑕疵样本' / '其他' / cls / f'{cls}2018.jpg')
    # the unknown sub-class is an error of its image, not of the scan
    with pytest.raises(ConversionError, match="未知瑕疵2018.jpg: class "
                       "'未知瑕疵' is not in the taxonomy"):
        convert('tianchi_aluminum', root, tmp_path / 'o1')
    assert not (tmp_path / 'o1').exists()
    summary = run('tianchi_aluminum', str(root), str(tmp_path / 'out'),
                  on_error='skip', progress=False)
    assert summary['num_images'] == 2 + 10 + 5
    assert summary['num_skipped'] == 1
    sk = _skipped(tmp_path / 'out')
    assert sk[0]['item'] == '瑕疵样本/其他/未知瑕疵/未知瑕疵2018.jpg'
    cats = json.loads((tmp_path / 'out' / 'categories.json')
                      .read_text(encoding='utf-8'))
    by = {c['name']: c['defect_type'] for c in cats}
    assert set(by) == set(ROUND1) | set(OTHERS)
    assert by['划伤'] == 'scratch' and by['铝屑'] == 'foreign object debris'
    assert 'other defect' not in by.values()
    coco = json.loads((tmp_path / 'out' / 'annotations' / 'train.json')
                      .read_text(encoding='utf-8'))
    cid = {c['id']: c['name'] for c in coco['categories']}
    for im in coco['images']:
        if '其他' in im['file_name']:
            assert im['attributes'] == {'group': '其他'}
            assert cid[im['image_label']] in im['file_name']
    # allow_unknown keeps it as a class of its own ("other defect")
    cocos = convert('tianchi_aluminum', root, tmp_path / 'o2',
                    config={'allow_unknown': True})
    assert count(cocos) == 18


def _labelme(path, shapes, encoding='utf-8'):
    path.write_bytes(json.dumps({'shapes': [
        {'label': lab, 'points': pts, 'shape_type': 'polygon'}
        for lab, pts in shapes], 'imagePath': path.stem + '.jpg'},
        ensure_ascii=False).encode(encoding))


def test_tianchi_aluminum_round2_quirks(tmp_path):
    root = tmp_path / 'guangdong_round2_train_20181011'
    tri = [[2, 2], [20, 2], [20, 10]]
    write_img(root / '单瑕疵图片' / '擦花' / 'a.jpg', 40, 60)
    _labelme(root / '单瑕疵图片' / '擦花' / 'a.json', [('擦花', tri)],
             encoding='utf-8-sig')  # with a BOM
    write_img(root / '单瑕疵图片' / '脏点' / 'b.jpg', 40, 60)
    _labelme(root / '单瑕疵图片' / '脏点' / 'b.json', [('脏点', tri)],
             encoding='gbk')  # GBK-encoded
    write_img(root / '多瑕疵图片' / 'c.jpg', 40, 60)
    (root / '多瑕疵图片' / 'c.json').write_bytes(b'{"shapes": [\xff')
    write_img(root / '无瑕疵图片' / 'n.jpg', 40, 60)  # normal, 2nd spelling
    with pytest.raises(ConversionError, match='c.json: cannot read LabelMe'):
        convert('tianchi_aluminum', root, tmp_path / 'o1')
    summary = run('tianchi_aluminum', str(root), str(tmp_path / 'out'),
                  on_error='skip', progress=False)
    assert summary['num_images'] == 3 and summary['num_normal'] == 1
    assert [s['item'] for s in _skipped(tmp_path / 'out')] == [
        '多瑕疵图片/c.jpg']


# --------------------------------------------------------------------------
# GC10-DET
# --------------------------------------------------------------------------
def _gc10(root):
    for k, cls in ((1, '1_chongkong'), (10, '10_yaozhed')):
        for i in range(3):
            stem = f'img_0{k % 10}_{k:02d}{i:04d}'
            write_img(root / str(k) / f'{stem}.jpg', 30, 40, gray=True)
            write_voc(root / 'lable' / f'{stem}.xml', f'{stem}.jpg', 40, 30,
                      [(cls, 1, 1, 9, 9)])
    return root


def test_gc10_det_release_quirks(tmp_path):
    import shutil
    root = _gc10(tmp_path / 'GC10-DET')
    cocos = convert('gc10_det', root, tmp_path / 'out')
    anns = [a for c in cocos.values() for a in c.dataset['annotations']]
    cats = names(next(iter(cocos.values())))
    assert sorted(cats[a['category_id']] for a in anns) == \
        ['10_yaozhe'] * 3 + ['1_chongkong'] * 3  # typo read as 10_yaozhe
    # the same file in two class folders, byte-identical: converted once
    (root / '5').mkdir()
    shutil.copy(root / '1' / 'img_01_010000.jpg', root / '5')
    summary = run('gc10_det', str(root), str(tmp_path / 'o2'),
                  progress=False)
    assert summary['num_images'] == 6 and summary['num_skipped'] == 1
    sk = _skipped(tmp_path / 'o2')
    assert sk[0]['item'] == '5/img_01_010000.jpg'
    assert 'duplicate of 1/img_01_010000.jpg' in sk[0]['reason']
    # ... with different bytes: each copy is an error naming the other
    write_img(root / '5' / 'img_01_010000.jpg', 30, 40, gray=True)
    with pytest.raises(ConversionError, match='also in 5/img_01_010000.jpg'):
        convert('gc10_det', root, tmp_path / 'o3')
    (root / '5' / 'img_01_010000.jpg').unlink()
    # the stray label "d": an error of that image, or dropped on request
    write_voc(root / 'lable' / 'img_01_010001.xml', 'img_01_010001.jpg', 40,
              30, [('1_chongkong', 1, 1, 9, 9), ('d', 3, 3, 6, 6)])
    with pytest.raises(ConversionError,
                       match="img_01_010001.xml: unknown class name 'd'"):
        convert('gc10_det', root, tmp_path / 'o4')
    cocos = convert('gc10_det', root, tmp_path / 'o5',
                    config={'drop_labels': ['d']})
    im = _images(cocos)['1/img_01_010001.jpg']
    assert im['attributes'] == {'dropped_labels': ['d']}
    # an image without XML: listed in skipped.json
    (root / 'lable' / 'img_01_010002.xml').unlink()
    summary = run('gc10_det', str(root), str(tmp_path / 'o6'),
                  on_error='skip', config={'drop_labels': ['d']},
                  progress=False)
    assert summary['num_images'] == 5
    assert [s['path'].rsplit('/', 2)[1:] for s in _skipped(
        tmp_path / 'o6')] == [['lable', 'img_01_010002.xml']]


# --------------------------------------------------------------------------
# VisA: defect classes from the id2class table
# --------------------------------------------------------------------------
def test_visa_defect_classes_from_id2class(tmp_path):
    root = tmp_path / 'VisA'
    rows = ['object,split,label,image,mask']
    base = root / 'candle' / 'Data'
    for i in range(2):
        write_img(base / 'Images' / 'Normal' / f'{i:04d}.JPG')
        rows.append(f'candle,train,normal,candle/Data/Images/Normal/'
                    f'{i:04d}.JPG,')
    # 000: two regions of class 1 and one of class 3; 001: class 8 only
    for stem, rects in (('000', ((2, 6, 2, 6, 1), (10, 12, 30, 34, 1),
                                 (20, 30, 20, 28, 3))),
                        ('001', ((1, 4, 1, 4, 8), ))):
        write_img(base / 'Images' / 'Anomaly' / f'{stem}.JPG')
        write_mask(base / 'Masks' / 'Anomaly' / f'{stem}.png', rects=rects)
        rows.append(f'candle,test,anomaly,candle/Data/Images/Anomaly/'
                    f'{stem}.JPG,candle/Data/Masks/Anomaly/{stem}.png')
    (root / 'split_csv').mkdir(parents=True)
    (root / 'split_csv' / '1cls.csv').write_text('\n'.join(rows) + '\n')
    cocos = convert('visa', root, tmp_path / 'out')
    cats = names(cocos['test'])
    assert len(cats) == 8
    assert cats[1] == 'candle/chunk of wax missing'
    assert cats[8] == 'candle/other'
    anns = cocos['test'].dataset['annotations']
    got = sorted((cats[a['category_id']], a['area']) for a in anns)
    assert got == [('candle/chunk of wax missing', 16 + 8),
                   ('candle/other', 9), ('candle/weird candle wick', 80)]
    ims = _images(cocos)
    assert ims['candle/Data/Images/Anomaly/000.JPG']['image_label'] is None
    assert cats[ims['candle/Data/Images/Anomaly/001.JPG']['image_label']] \
        == 'candle/other'
    full = json.loads((tmp_path / 'out' / 'categories.json').read_text())
    by = {c['name']: c for c in full}
    assert by['candle/chunk of wax missing']['defect_type'] == 'missing part'
    assert by['candle/other']['product'] == 'candle'
    # a value the table does not know is an error naming the mask
    write_mask(base / 'Masks' / 'Anomaly' / '001.png', rects=(
        (1, 4, 1, 4, 9), ))
    with pytest.raises(ConversionError,
                       match=r'001.png: mask value\(s\) \[9\]'):
        convert('visa', root, tmp_path / 'o2')
    # an id2class.json beside the data replaces the built-in table
    (root / 'id2class.json').write_text(json.dumps({'candle': {
        '0': 'BACKGROUND', '1': 'Wax', '2': 'Wick', '3': 'Spot',
        '9': 'Nine'}}))
    with pytest.raises(ConversionError, match='id2class.json: not an '
                       'id2class table'):
        convert('visa', root, tmp_path / 'o3')


# --------------------------------------------------------------------------
# DAGM 2007: nested archive, Kaggle Labels.txt
# --------------------------------------------------------------------------
def _dagm_class(folder, bom=False):
    for sub in ('Train', 'Test'):
        d = folder / sub
        rows = ['1']
        for i in range(1, 4):
            write_img(d / f'{i:04d}.PNG', 32, 32, gray=True)
            bad = i == 1
            if bad:
                write_mask(d / 'Label' / f'{i:04d}_label.PNG', 32, 32,
                           rects=((4, 8, 4, 12, 255), ))
            rows.append(f'{i}\t{int(bad)}\t{i:04d}.PNG\t0\t' +
                        (f'{i:04d}_label.PNG' if bad else '0'))
        (d / 'Label').mkdir(exist_ok=True)
        text = '\n'.join(rows) + '\n'
        (d / 'Label' / 'Labels.txt').write_bytes(
            (b'\xef\xbb\xbf' if bom else b'') + text.encode())


def test_dagm2007_nested_and_kaggle_layouts(tmp_path):
    nested = tmp_path / 'nested'
    for k in (1, 2):
        _dagm_class(nested / f'Class{k}' / f'Class{k}')
    cocos = convert('dagm2007', nested, tmp_path / 'o1')
    assert count(cocos) == 12 and count(cocos, normal=False) == 4
    assert all(f.startswith(('Class1/Class1/', 'Class2/Class2/'))
               for f in _images(cocos))
    kaggle = tmp_path / 'kaggle'
    for k in (3, 4):
        _dagm_class(kaggle / f'Class{k}', bom=True)
    cocos = convert('dagm2007', kaggle, tmp_path / 'o2')
    assert count(cocos) == 12 and count(cocos, normal=False) == 4
    # a class folder in neither layout: an error naming it, not 0 images
    (kaggle / 'Class5' / 'stuff').mkdir(parents=True)
    with pytest.raises(ConversionError, match='Class5: no Train/ or Test/'):
        convert('dagm2007', kaggle, tmp_path / 'o3')


# --------------------------------------------------------------------------
# NEU-DET: the Kaggle copy
# --------------------------------------------------------------------------
def test_neu_det_kaggle_layout(tmp_path):
    root = tmp_path / 'kaggle' / 'NEU-DET'
    n = 0
    for sub, k in (('train', 3), ('validation', 1)):
        for cls in ('crazing', 'scratches'):
            for i in range(k):
                n += 1
                stem = f'{cls}_{n}'
                write_img(root / sub / 'images' / cls / f'{stem}.jpg', 200,
                          200)
                write_voc(root / sub / 'annotations' / f'{stem}.xml',
                          f'{stem}.jpg', 200, 200,
                          [(cls, 10, 10, 50, 60), ('patches', 1, 1, 5, 5)])
    for r in (root, root.parent):  # NEU-DET itself or its parent
        cocos = convert('neu_det', r, tmp_path / 'out')
        assert count(cocos) == 8
        anns = [a for c in cocos.values() for a in c.dataset['annotations']]
        assert len(anns) == 16
    ims = _images(cocos)
    im = ims['NEU-DET/validation/images/scratches/scratches_8.jpg']
    assert im['attributes'] == {'copy_split': 'validation'}
    assert names(next(iter(cocos.values())))[im['image_label']] == \
        'scratches'
    (root / 'train' / 'annotations' / 'crazing_1.xml').unlink()
    with pytest.raises(ConversionError, match='crazing_1.xml'):
        convert('neu_det', root, tmp_path / 'o2')


# --------------------------------------------------------------------------
# nothing converts to an empty output without an error
# --------------------------------------------------------------------------
def test_all_skipped_is_an_error(tmp_path):
    root = tmp_path / 'KolektorSDD'
    write_img(root / 'kos01' / 'Part0.jpg', 40, 24, gray=True)  # no label
    with pytest.raises(ConversionError, match='nothing converted: all 1 '
                       'item.*Part0_label'):
        run('kolektorsdd', str(root), str(tmp_path / 'out'),
            on_error='skip', progress=False)
    assert not (tmp_path / 'out').exists()
