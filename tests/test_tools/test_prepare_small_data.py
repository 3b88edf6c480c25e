# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""tools/misc/prepare_small_data.sh on the real datasets: our converters and
corpus builder give the small recipe's Stage-1 corpus, evaluation splits
excluded, with image roots the corpus dataset resolves."""
import json
import os

import pytest

from ._runner import run_tool


@pytest.mark.slow
@pytest.mark.real_data
def test_prepare_small_data(shared_data_root, tmp_path):
    out = tmp_path / 'imdd'
    run_tool(['bash', 'tools/misc/prepare_small_data.sh', shared_data_root,
              out], timeout=900)
    for src in ('magnetic_tile', 'neu_det', 'elpv'):
        assert (out / src / 'captions.jsonl').is_file()
    corpus = out / 'corpus_small'
    index = json.loads((corpus / 'index.json').read_text())
    assert index, 'empty corpus index'
    from imdd_mm.datasets.corpus_dataset import IMDDCorpusDataset
    ds = IMDDCorpusDataset(ann_file='index.json', data_root=str(corpus),
                           pipeline=[])
    # the train splits only: the three datasets hold 1,344 + 1,800 + 2,624
    # images, of which the val/test splits are excluded
    assert 0 < len(ds) < 1344 + 1800 + 2624
    info = ds.get_data_info(0)
    assert os.path.isfile(info['img_path']), info
