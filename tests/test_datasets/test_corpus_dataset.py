# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""IMDDCorpusDataset: lazy, sharded loading of the corpus built by
data_converters/build_corpus.py."""
import os.path as osp
import pickle

import numpy as np
import pytest

import imdd_mm  # noqa: F401
from data_converters.corpus import build_corpus, iter_corpus
from mmdet.registry import DATASETS
from tests.test_data_converters.test_corpus import make_converted


@pytest.fixture
def corpus(tmp_path):
    ids = {'scratch': 101, 'crack': 102}
    src, _ = make_converted(
        tmp_path, 'src', ['scratch', 'crack'], {
            'train': [(f'tr/{i}.png', i + 1, ('scratch', 'crack', None)[i % 3],
                       0 if i % 3 == 2 else 1 + i % 2) for i in range(11)],
            'test': [('te/0.png', 50, 'crack', 1)],
        }, ids)
    out = tmp_path / 'corpus'
    build_corpus([str(src)], str(out), shard_size=4)
    return out


def test_lazy_loading_and_records(corpus):
    ds = DATASETS.build(dict(type='IMDDCorpusDataset',
                             ann_file=str(corpus / 'index.json')))
    assert len(ds) == 12
    assert ds.metainfo['classes'] == ('scratch', 'crack')
    # nothing read but the index: no shard handles or offsets yet
    assert ds._files == {} and ds._offsets == {}
    recs = list(iter_corpus(str(corpus)))
    for i in (0, 5, 11, -1):
        info = ds.get_data_info(i)
        rec = recs[i]
        assert info['img_path'] == osp.join(corpus, rec['image_root'],
                                            rec['file_name'])
        assert osp.isfile(info['img_path'])
        assert info['img_id'] == rec['id']
        assert info['caption'] == rec['caption']
        assert info['caption_nouns'] == rec['nouns']
        assert info['is_normal'] == rec['is_normal']
        assert info['source'] == 'src'
        assert len(info['instances']) == len(rec['instances'])
    assert set(ds._files) <= {0, 1, 2} and len(ds._files) >= 2
    info = ds.get_data_info(1)  # tr/1.png: crack, 2 instances
    assert info['image_label'] == 1
    assert [i['bbox_label'] for i in info['instances']] == [1, 1]
    assert info['instances'][1]['bbox'] == [0, 0, 3, 2]  # xywh -> xyxy
    assert info['instances'][0]['mask'] == [[0, 0, 2, 0, 2, 2, 0, 2]]
    normal = ds.get_data_info(2)
    assert normal['is_normal'] and normal['image_label'] == -1 and \
        normal['instances'] == []
    assert ds.get_cat_ids(0) == [0]
    with pytest.raises(IndexError):
        ds.get_data_info(12)


def test_pickle_drops_handles_and_subsets(corpus):
    ds = DATASETS.build(dict(type='IMDDCorpusDataset',
                             ann_file=str(corpus)))
    ds.get_data_info(7)
    clone = pickle.loads(pickle.dumps(ds))  # what a spawned worker gets
    assert clone._files == {} and clone._offsets == {}
    assert clone.get_data_info(7) == ds.get_data_info(7)
    sub = ds.get_subset([3, 9])
    assert len(sub) == 2 and len(ds) == 12
    assert sub.get_data_info(1)['img_id'] == ds.get_data_info(9)['img_id']
    ds2 = DATASETS.build(dict(type='IMDDCorpusDataset',
                              ann_file=str(corpus), indices=5))
    assert len(ds2) == 5
    flt = DATASETS.build(dict(type='IMDDCorpusDataset', ann_file=str(corpus),
                              filter_cfg=dict(splits=['test'])))
    assert len(flt) == 1
    assert flt.get_data_info(0)['img_path'].endswith('te/0.png')
    with pytest.raises(ValueError, match='unknown filter_cfg'):
        DATASETS.build(dict(type='IMDDCorpusDataset', ann_file=str(corpus),
                            filter_cfg=dict(foo=1)))


def test_pipeline_and_missing_offsets(corpus):
    # without .idx sidecars the shard is scanned once
    for p in (corpus / 'shards').glob('*.idx'):
        p.unlink()
    ds = DATASETS.build(dict(
        type='IMDDCorpusDataset', ann_file=str(corpus),
        metainfo=dict(classes=('crack', )),  # subset: scratch dropped
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True,
                       with_mask=True)]))
    out = ds[1]
    assert out['img'].shape[:2] == (8, 8)
    assert out['gt_bboxes_labels'].tolist() == [0, 0]
    assert out['gt_masks'].masks.shape == (2, 8, 8)
    assert out['caption'] and out['caption_nouns']
    assert len(ds.get_data_info(0)['instances']) == 0  # scratch image
    assert isinstance(ds._offsets[0], np.ndarray)


def test_image_root_override_and_relative_roots(corpus, tmp_path):
    ds = DATASETS.build(dict(type='IMDDCorpusDataset', ann_file=str(corpus),
                             img_root_override='/elsewhere'))
    assert ds.get_data_info(0)['img_path'] == '/elsewhere/tr/0.png'
    # a relative image_root resolves against the corpus folder
    shard = corpus / 'shards' / 'shard-00000.jsonl'
    lines = shard.read_text().splitlines()
    import json
    rec = json.loads(lines[0])
    rec['image_root'] = 'imgs'
    lines[0] = json.dumps(rec)
    shard.write_text('\n'.join(lines) + '\n')
    for p in (corpus / 'shards').glob('*.idx'):
        p.unlink()
    ds = DATASETS.build(dict(type='IMDDCorpusDataset', ann_file=str(corpus)))
    assert ds.get_data_info(0)['img_path'] == str(corpus / 'imgs' /
                                                  'tr' / '0.png')
