# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""``imdd_mm.apis.DefectInferencer`` on a randomly initialised tiny Stage-2
checkpoint: input kinds, outputs, vocabulary switching, errors."""
import json
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from ..tiny_stage2 import TINY_STAGE2_CONFIG as CONFIG
from ..tiny_stage2 import save_tiny_stage2_checkpoint

REPO = Path(__file__).resolve().parents[2]
VOCAB = ['scratch', 'crack', 'stain']


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return save_tiny_stage2_checkpoint(
        tmp_path_factory.mktemp('ckpt') / 'tiny.pth')


@pytest.fixture(scope='module')
def inferencer(checkpoint):
    from imdd_mm.apis import DefectInferencer
    return DefectInferencer(CONFIG, weights=str(checkpoint),
                            vocabulary=VOCAB, device='cpu', tile_size=256,
                            show_progress=False)


def _check_record(record, h, w, vocab):
    assert (record['height'], record['width']) == (h, w)
    assert record['vocabulary'] == vocab
    assert record['score_map'].shape == (h, w)
    assert record['score_map'].dtype == np.float32
    assert 0.0 <= record['score_map'].min() <= record['score_map'].max() <= 1
    assert record['max_defect_probability'] == pytest.approx(
        float(record['score_map'].max()), abs=1e-6)
    assert record['image_label'] in vocab + ['normal']
    scores = [inst['score'] for inst in record['instances']]
    assert scores == sorted(scores, reverse=True)
    for inst in record['instances']:
        assert vocab[inst['label_id']] == inst['label']
        rle = dict(inst['mask_rle'], counts=inst['mask_rle'][
            'counts'].encode('ascii'))
        mask = mask_util.decode(rle)
        assert mask.shape == (h, w) and mask.sum() == inst['area'] > 0
        ys, xs = np.nonzero(mask)
        x0, y0, x1, y1 = inst['bbox_xyxy']
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1,
                                    ys.max() + 1)


def test_array_kinds(inferencer):
    rng = np.random.default_rng(0)
    arrays = {
        'gray8': rng.integers(0, 256, (40, 50), dtype=np.uint8),
        'deep16': rng.integers(1000, 5000, (30, 40), dtype=np.uint16),
        'bgra': rng.integers(0, 256, (33, 31, 4), dtype=np.uint8),
        'tiny': rng.integers(0, 256, (9, 12, 3), dtype=np.uint8),
        'float': rng.random((20, 25, 3)).astype(np.float32),
        'large': np.full((300, 280, 3), 140, np.uint8),
    }
    result = inferencer(list(arrays.values()), pred_score_thr=0.0,
                        return_vis=True)
    assert len(result['predictions']) == len(arrays)
    assert result['skipped'] == []
    for (name, arr), record, vis in zip(arrays.items(),
                                        result['predictions'],
                                        result['visualization']):
        h, w = arr.shape[:2]
        _check_record(record, h, w, VOCAB)
        assert record['tiles'] == (4 if name == 'large' else 1), name
        assert vis['overlay'].shape == vis['heatmap'].shape == (h, w, 3)
    # threshold 0 keeps every query of the random model
    assert sum(len(r['instances']) for r in result['predictions']) > 0


def test_matches_mmdet_inference_detector(inferencer):
    """Untiled, the inferencer equals mmdet's own inference path."""
    from mmdet.apis import inference_detector
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    model = inferencer.model
    cfg = model.cfg.copy()
    steps = [s for s in cfg.test_dataloader.dataset.pipeline
             if s['type'] != 'LoadAnnotations']
    cfg.test_dataloader.dataset.pipeline = steps
    model.cfg = cfg
    try:
        sample = inference_detector(model, image)
    finally:
        model.cfg = inferencer.cfg
    record = inferencer(image, pred_score_thr=0.0)['predictions'][0]
    np.testing.assert_allclose(record['score_map'],
                               sample.pred_score_map.data[0].numpy(),
                               atol=1e-6)
    expected = sample.pred_instances.scores.numpy()
    got = [i['score'] for i in record['instances']]
    kept = expected[sample.pred_instances.masks.flatten(1).any(1).numpy()]
    np.testing.assert_allclose(got, np.sort(kept)[::-1], atol=1e-5)
    assert record['image_score'] == pytest.approx(
        float(sample.pred_image_score), abs=1e-6)


def test_vocabulary_switch_without_rebuild(inferencer):
    image = np.full((32, 32, 3), 90, np.uint8)
    model = inferencer.model
    encoder = model.panoptic_head.text_encoder
    inferencer(image, vocabulary=['dent', 'hole'])
    calls = encoder.num_tower_calls
    other = inferencer(image, vocabulary=['rust'], pred_score_thr=0.0)
    assert encoder.num_tower_calls > calls  # a new name is encoded
    calls = encoder.num_tower_calls
    again = inferencer(image, vocabulary=['dent', 'hole'],
                       pred_score_thr=0.0)
    assert encoder.num_tower_calls == calls  # cached: no tower call
    assert inferencer.model is model
    assert inferencer.vocabulary == ('dent', 'hole')
    assert {i['label'] for i in again['predictions'][0]['instances']} <= \
        {'dent', 'hole'}
    assert {i['label'] for i in other['predictions'][0]['instances']} == \
        {'rust'}
    inferencer.set_vocabulary(VOCAB)


def test_paths_folder_and_outputs(inferencer, tmp_path):
    folder = tmp_path / 'imgs'
    (folder / 'sub').mkdir(parents=True)
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (36, 44, 3), dtype=np.uint8)
    assert cv2.imwrite(str(folder / 'a.png'), image)
    assert cv2.imwrite(str(folder / 'sub' / 'b.png'), image[:20])
    (folder / 'broken.png').write_bytes(b'not a png')
    out = tmp_path / 'out'
    result = inferencer(str(folder), out_dir=str(out), pred_score_thr=0.0,
                        skip_unreadable=True)
    assert [Path(r['image']).name for r in result['predictions']] == [
        'a.png', 'b.png']
    assert len(result['skipped']) == 1
    assert 'broken.png' in result['skipped'][0]['reason']
    for stem, (h, w) in (('a', (36, 44)), ('sub/b', (20, 44))):
        record = json.loads((out / f'{stem}.json').read_text())
        assert (record['height'], record['width']) == (h, w)
        for kind in ('overlay', 'heatmap'):
            png = cv2.imread(str(out / f'{stem}_{kind}.png'))
            assert png.shape == (h, w, 3)
    assert not list(out.rglob('broken*')) and not list(out.rglob('*.tmp'))
    # the same image as a path and as an array gives the same prediction
    by_path = inferencer(str(folder / 'a.png'), pred_score_thr=0.0)
    by_array = inferencer(image, pred_score_thr=0.0)
    a, b = by_path['predictions'][0], by_array['predictions'][0]
    np.testing.assert_array_equal(a['score_map'], b['score_map'])
    assert a['instances'] == b['instances']


def test_errors(inferencer, tmp_path):
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'\x89PNG garbage')
    with pytest.raises(ValueError, match='bad.png.*readable'):
        inferencer(str(bad))
    with pytest.raises(FileNotFoundError, match='missing.png'):
        inferencer(str(tmp_path / 'missing.png'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no images'):
        inferencer(str(tmp_path / 'empty'))
    with pytest.raises(TypeError, match='unsupported input'):
        inferencer([42])
    with pytest.raises(ValueError, match='empty image'):
        inferencer(np.zeros((0, 5), np.uint8))
    with pytest.raises(ValueError):
        inferencer(np.zeros((8, 8), np.uint8), pred_scor_thr=0.1)  # typo
    with pytest.raises(ValueError, match='at least one name'):
        inferencer.set_vocabulary([' ', ''])


def test_model_name_from_metafile(checkpoint):
    from imdd_mm.apis import DefectInferencer, find_model
    entry = find_model('stage2_tiny')
    assert Path(entry['config']).resolve() == Path(CONFIG).resolve()
    assert entry['weights'] is None
    inf = DefectInferencer('stage2_tiny', weights=str(checkpoint),
                           vocabulary=['crack'], device='cpu',
                           show_progress=False)
    record = inf(np.zeros((16, 16), np.uint8))['predictions'][0]
    assert record['vocabulary'] == ['crack']
    with pytest.raises(ValueError, match='stage2_tiny'):
        find_model('no_such_model')


def test_default_vocabulary_from_checkpoint(checkpoint, tmp_path):
    """Without ``vocabulary=`` the checkpoint's classes are used, never
    mmdet's COCO fall-back; with neither the call fails clearly."""
    from imdd_mm.apis import DefectInferencer
    ckpt = torch.load(checkpoint, weights_only=False)
    ckpt['meta'] = dict(dataset_meta=dict(classes=('pit', 'burr')))
    with_meta = tmp_path / 'with_meta.pth'
    torch.save(ckpt, with_meta)
    inf = DefectInferencer(CONFIG, weights=str(with_meta), device='cpu',
                           show_progress=False)
    record = inf(np.zeros((16, 16), np.uint8))['predictions'][0]
    assert record['vocabulary'] == ['pit', 'burr']
    bare = DefectInferencer(CONFIG, weights=str(checkpoint), device='cpu',
                            show_progress=False)
    with pytest.raises(RuntimeError, match='no vocabulary'):
        bare(np.zeros((16, 16), np.uint8))
