# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""tools/infer.py: open-vocabulary inference on a folder of awkward images
(grayscale, 16-bit, RGBA, tiny, large and tiled, unreadable), run as a user
runs it, with a tiny random Stage-2 checkpoint (no training)."""
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from ._runner import REPO_ROOT, run_tool

CONFIG = 'configs/imdd/tiny/stage2_tiny.py'
VOCAB = ['scratch', 'crack', 'stain']
GOOD = {  # name -> (height, width)
    'gray8': (40, 50),
    'deep16': (30, 40),
    'rgba': (33, 31),
    'tiny': (9, 12),
    'large': (600, 700),
}


def _load_infer():
    spec = importlib.util.spec_from_file_location(
        'imdd_tools_infer', REPO_ROOT / 'tools' / 'infer.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


infer = _load_infer()


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A randomly initialised tiny Stage-2 model saved as a checkpoint."""
    import imdd_mm
    from mmdet.registry import MODELS
    from mmengine.config import Config
    imdd_mm.register_all_modules()
    cfg = Config.fromfile(str(REPO_ROOT / CONFIG))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    path = tmp_path_factory.mktemp('ckpt') / 'stage2_tiny_random.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


def _write_inputs(folder: Path):
    rng = np.random.default_rng(0)
    folder.mkdir()
    h, w = GOOD['gray8']
    assert cv2.imwrite(str(folder / 'gray8.png'),
                       rng.integers(0, 256, (h, w), dtype=np.uint8))
    h, w = GOOD['deep16']
    deep = rng.integers(1000, 5000, (h, w), dtype=np.uint16)
    assert cv2.imwrite(str(folder / 'deep16.png'), deep)
    h, w = GOOD['rgba']
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    assert cv2.imwrite(str(folder / 'rgba.png'), rgba)
    h, w = GOOD['tiny']
    assert cv2.imwrite(str(folder / 'tiny.png'),
                       rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    h, w = GOOD['large']
    large = np.full((h, w, 3), 140, np.uint8)
    cv2.line(large, (50, 80), (650, 500), (20, 20, 20), 5)
    assert cv2.imwrite(str(folder / 'large.png'), large)
    (folder / 'bad.png').write_bytes(rng.bytes(300))  # corrupt
    (folder / 'notes.txt').write_text('not an image')
    # the written images decode as the kinds they claim to be
    assert cv2.imread(str(folder / 'deep16.png'),
                      cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert cv2.imread(str(folder / 'rgba.png'),
                      cv2.IMREAD_UNCHANGED).shape[2] == 4
    assert cv2.imread(str(folder / 'gray8.png'),
                      cv2.IMREAD_UNCHANGED).ndim == 2


def test_infer_folder(checkpoint, tmp_path):
    inputs = tmp_path / 'images'
    _write_inputs(inputs)
    out = tmp_path / 'out'
    proc = run_tool([
        'tools/infer.py', inputs, CONFIG, checkpoint, '--vocab',
        ','.join(VOCAB), '--out', out, '--tile-size', '256',
        '--score-thr', '0.0', '--device', 'cpu'
    ], timeout=900)
    assert '5 image(s) written' in proc.stdout
    assert 'bad.png' in proc.stdout + proc.stderr  # reported on screen

    summary = json.loads((out / 'summary.json').read_text())
    assert summary['processed'] == len(GOOD)
    assert summary['vocabulary'] == VOCAB
    assert len(summary['skipped']) == 1
    bad = summary['skipped'][0]
    assert Path(bad['file']).name == 'bad.png'
    assert 'bad.png' in bad['reason'] and 'readable' in bad['reason']
    assert not list(out.glob('bad*'))

    total_instances = 0
    for name, (h, w) in GOOD.items():
        for kind in ('overlay', 'heatmap'):
            png = cv2.imread(str(out / f'{name}_{kind}.png'),
                             cv2.IMREAD_UNCHANGED)
            assert png is not None and png.shape == (h, w, 3), (name, kind)
        record = json.loads((out / f'{name}.json').read_text())
        assert (record['height'], record['width']) == (h, w)
        assert record['vocabulary'] == VOCAB
        assert record['image_label'] in VOCAB + ['normal']
        assert 0.0 <= record['image_score'] <= 1.0
        assert 0.0 <= record['max_defect_probability'] <= 1.0
        assert record['tiles'] == (12 if name == 'large' else 1)
        assert Path(record['image']).name == f'{name}.png'
        scores = [inst['score'] for inst in record['instances']]
        assert scores == sorted(scores, reverse=True)
        for inst in record['instances']:
            assert inst['label'] in VOCAB
            assert VOCAB[inst['label_id']] == inst['label']
            rle = dict(inst['mask_rle'])
            assert rle['size'] == [h, w]
            rle['counts'] = rle['counts'].encode('ascii')
            mask = mask_util.decode(rle)
            assert mask.shape == (h, w)
            assert mask.sum() == inst['area'] > 0
            x0, y0, x1, y1 = inst['bbox_xyxy']
            ys, xs = np.nonzero(mask)
            # the box encloses the mask (tiles: the box of its tile part)
            assert x0 <= xs.min() and y0 <= ys.min()
            assert xs.max() < x1 <= w and ys.max() < y1 <= h
        total_instances += len(record['instances'])
    # with --score-thr 0 the random model's queries are all kept
    assert total_instances > 0


def test_tile_windows_cover_with_overlap():
    for (h, w, tile, overlap) in [(600, 700, 256, 0.25), (300, 1000, 256,
                                                          0.5),
                                  (257, 256, 256, 0.0), (5000, 40, 512,
                                                         0.1)]:
        windows = infer.tile_windows(h, w, tile, overlap)
        covered = np.zeros((h, w), np.int32)
        for x0, y0, x1, y1 in windows:
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert x1 - x0 == min(tile, w) and y1 - y0 == min(tile, h)
            covered[y0:y1, x0:x1] += 1
        assert (covered > 0).all(), (h, w, tile, overlap)
        # neighbours overlap by at least overlap * tile pixels
        for axis in (0, 1):
            starts = sorted({win[axis] for win in windows})
            for a, b in zip(starts, starts[1:]):
                assert tile - (b - a) >= int(np.ceil(overlap * tile)) - 1
        assert len(windows) == len(set(windows))
    assert infer.tile_windows(600, 700, 256, 0.25) == [
        (x, y, x + 256, y + 256) for y in (0, 192, 344)
        for x in (0, 192, 384, 444)
    ]
    assert infer.tile_windows(200, 256, 256, 0.25) == [(0, 0, 256, 200)]
    for tile, overlap in ((256, 1.0), (256, -0.1), (0, 0.25)):
        with pytest.raises(ValueError, match='tile'):
            infer.tile_windows(600, 700, tile, overlap)


def test_list_images_and_output_names(tmp_path):
    root = tmp_path / 'imgs'
    (root / 'sub').mkdir(parents=True)
    for rel in ('a.png', 'a.JPG', 'b.tif', 'sub/c.bmp', 'sub/readme.md',
                'out/a_overlay.png'):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b'x')
    base, files = infer.list_images(str(root), exclude=root / 'out')
    assert base == root
    assert [p.relative_to(root).as_posix() for p in files] == [
        'a.JPG', 'a.png', 'b.tif', 'sub/c.bmp']
    stems = infer.output_stems(root, files)
    assert [stems[p].as_posix() for p in files] == [
        'a_jpg', 'a_png', 'b', 'sub/c']
    base, files = infer.list_images(str(root / 'b.tif'))
    assert base == root and files == [root / 'b.tif']
    with pytest.raises(FileNotFoundError, match='nope'):
        infer.list_images(str(root / 'nope'))


def test_read_image_kinds(tmp_path):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    cv2.imwrite(str(tmp_path / 'g.png'), gray)
    img = infer.read_image(tmp_path / 'g.png')
    assert img.shape == (4, 5, 3) and img.dtype == np.uint8
    assert (img == gray[..., None]).all()
    deep = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 100 + 1000)
    cv2.imwrite(str(tmp_path / 'd.png'), deep)
    img = infer.read_image(tmp_path / 'd.png')
    assert img.dtype == np.uint8 and img.min() == 0 and img.max() == 255
    (tmp_path / 'empty.png').write_bytes(b'')
    for name in ('empty.png', 'missing.png'):
        with pytest.raises((ValueError, OSError), match=name):
            infer.read_image(tmp_path / name)
