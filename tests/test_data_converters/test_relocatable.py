# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Converter outputs do not depend on where they were made: convert, move
the dataset and the output elsewhere, and train-time loading finds the
images through the root given then."""
import os.path as osp
import shutil

import pytest

import imdd_mm  # noqa: F401
from data_converters.convert import convert
from data_converters.corpus import CorpusInput, build_corpus
from mmdet.registry import DATASETS
from tests.test_data_converters.fake_layouts import make_magnetic_tile


def _outputs(out):
    files = sorted((out / 'annotations').glob('*.json'))
    return files + [out / 'captions.jsonl', out / 'categories.json']


def test_convert_move_and_load(tmp_path):
    root = make_magnetic_tile(tmp_path / 'here' / 'magnetic_tile')
    out = tmp_path / 'here' / 'imdd' / 'magnetic_tile'
    summary = convert('magnetic_tile', str(root), str(out), progress=False)
    n = summary['num_images']
    for f in _outputs(out):
        text = f.read_text(encoding='utf-8')
        assert str(tmp_path) not in text and 'here' not in text, f
    # move data and output to another "machine"
    new = tmp_path / 'there' / 'data'
    shutil.move(str(tmp_path / 'here'), str(new))
    new_root, new_out = new / 'magnetic_tile', new / 'imdd' / 'magnetic_tile'
    # captions.jsonl: the dataset root given at train time
    ds = DATASETS.build(dict(type='ImageCaptionDataset',
                             ann_file='imdd/magnetic_tile/captions.jsonl',
                             data_root=str(new),
                             data_prefix=dict(img='magnetic_tile/')))
    assert len(ds) == n
    assert all(osp.isfile(ds.get_data_info(i)['img_path'])
               for i in range(len(ds)))
    ds = DATASETS.build(dict(type='ImageCaptionDataset',
                             ann_file=str(new_out / 'captions.jsonl'),
                             data_root=str(new_root)))  # data_root alone
    assert osp.isfile(ds.get_data_info(0)['img_path'])
    with pytest.raises(ValueError, match='no image root'):
        DATASETS.build(dict(type='ImageCaptionDataset',
                            ann_file=str(new_out / 'captions.jsonl')))
    # COCO files: data_prefix as for any mmdet dataset
    ds = DATASETS.build(dict(type='IMDDCocoDataset', data_root=str(new),
                             ann_file='imdd/magnetic_tile/annotations/'
                             'train.json',
                             data_prefix=dict(img='magnetic_tile/')))
    assert len(ds) and all(osp.isfile(ds.get_data_info(i)['img_path'])
                           for i in range(len(ds)))
    # the corpus: built with the root, then moved together with the data
    build_corpus([CorpusInput(str(new_out), image_root=str(new_root))],
                 str(new / 'corpus'))
    shutil.move(str(tmp_path / 'there'), str(tmp_path / 'third'))
    moved = tmp_path / 'third' / 'data'
    assert str(tmp_path / 'there') not in (
        moved / 'corpus' / 'shards' / 'shard-00000.jsonl').read_text()
    ds = DATASETS.build(dict(type='IMDDCorpusDataset',
                             ann_file=str(moved / 'corpus' / 'index.json')))
    assert len(ds) == n
    assert all(osp.isfile(ds.get_data_info(i)['img_path'])
               for i in range(len(ds)))
    ds = DATASETS.build(dict(
        type='IMDDCorpusDataset', ann_file=str(moved / 'corpus'),
        img_roots={'magnetic_tile': '/elsewhere/mt'}))
    assert ds.get_data_info(0)['img_path'].startswith('/elsewhere/mt/')
