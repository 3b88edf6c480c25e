# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import os

import numpy as np
import pytest

from data_converters.base import (ConversionError, atomic_write_json,
                                  probe_image,
                                  mask_to_rle, read_image, read_mask,
                                  rle_area, rle_bbox, rle_to_mask,
                                  stratified_split)
from tests.test_data_converters.fake_layouts import gray, truncate, write_img


@pytest.mark.parametrize('seed', range(5))
def test_mask_rle_area_bbox_round_trip(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(5, 60, 2)
    m = np.zeros((h, w), bool)
    for _ in range(3):
        y, x = rng.integers(0, h), rng.integers(0, w)
        m[y:y + rng.integers(1, 10), x:x + rng.integers(1, 10)] = True
    rle = mask_to_rle(m)
    assert isinstance(rle['counts'], str) and rle['size'] == [h, w]
    assert np.array_equal(rle_to_mask(rle), m)
    assert rle_area(rle) == int(m.sum())
    ys, xs = np.nonzero(m)
    assert rle_bbox(rle) == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                             ys.max() - ys.min() + 1]


def test_stratified_split_seeded_order_invariant_and_proportional():
    keys = ['normal'] * 100 + ['crack'] * 30 + ['dent'] * 3 + ['rare']
    order = [f'f{i:03d}' for i in range(len(keys))]
    s1 = stratified_split(keys, (0.7, 0.1, 0.2), seed=1, order=order)
    perm = np.random.default_rng(0).permutation(len(keys))
    s2 = stratified_split([keys[i] for i in perm], (0.7, 0.1, 0.2), seed=1,
                          order=[order[i] for i in perm])
    assert [s2[list(perm).index(i)] for i in range(len(keys))] == s1
    n = {s: sum(1 for k, x in zip(keys, s1) if k == 'normal' and x == s)
         for s in ('train', 'val', 'test')}
    assert n == {'train': 70, 'val': 10, 'test': 20}
    crack = [x for k, x in zip(keys, s1) if k == 'crack']
    assert crack.count('train') == 21 and crack.count('test') == 6
    dent = sorted(x for k, x in zip(keys, s1) if k == 'dent')
    assert dent == ['test', 'train', 'val']  # each split gets one
    assert stratified_split(keys, seed=2, order=order) != s1


def test_read_image_errors_name_the_file(tmp_path):
    good = write_img(tmp_path / 'a.jpg', gray(20, 20))
    assert read_image(good).shape == (20, 20)
    t = truncate(write_img(tmp_path / 'b.jpg', gray(64, 64)))
    with pytest.raises(ConversionError, match=r'b\.jpg: truncated JPEG'):
        read_image(t)
    p = truncate(write_img(tmp_path / 'c.png', gray(64, 64)), 0.6)
    with pytest.raises(ConversionError, match=r'c\.png: truncated PNG'):
        read_image(p)
    (tmp_path / 'd.png').write_bytes(b'not an image at all')
    with pytest.raises(ConversionError, match=r'd\.png: corrupt'):
        read_image(tmp_path / 'd.png')
    (tmp_path / 'e.png').write_bytes(b'')
    with pytest.raises(ConversionError, match=r'e\.png: empty file'):
        read_image(tmp_path / 'e.png')
    with pytest.raises(ConversionError, match=r'f\.png: file not found'):
        read_image(tmp_path / 'f.png')
    write_img(tmp_path / 'm.png', np.full((10, 12), 128, np.uint8))
    with pytest.raises(ConversionError, match=r'm\.png: mask size 12x10'):
        read_mask(tmp_path / 'm.png', (20, 20))
    assert read_mask(tmp_path / 'm.png').all()
    assert not read_mask(tmp_path / 'm.png', threshold=128).any()


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_json(tmp_path / 'x' / 'a.json', {'b': 1, 'a': [1.5]})
    assert (tmp_path / 'x' / 'a.json').read_text() == '{"a":[1.5],"b":1}\n'
    assert os.listdir(tmp_path / 'x') == ['a.json']
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / 'x' / 'a.json', {'a': float('nan')})
    assert os.listdir(tmp_path / 'x') == ['a.json']
    assert (tmp_path / 'x' / 'a.json').read_text() == '{"a":[1.5],"b":1}\n'


def test_probe_image_validates_like_a_full_decode(tmp_path):
    import cv2
    col = write_img(tmp_path / 'c.jpg', cv2.merge([gray(30, 40, k)
                                                   for k in range(3)]))
    assert probe_image(col) == (30, 40)
    assert probe_image(write_img(tmp_path / 'g.png', gray(7, 9))) == (7, 9)
    with pytest.raises(ConversionError, match=r'c\.jpg: truncated JPEG'):
        probe_image(truncate(col))
    (tmp_path / 'x.jpg').write_bytes(b'\xff\xd8garbage\xff\xd9')
    with pytest.raises(ConversionError, match=r'x\.jpg: corrupt'):
        probe_image(tmp_path / 'x.jpg')


@pytest.mark.parametrize('hw', [(1, 1), (7, 9), (33, 47), (200, 200),
                                (403, 632)])
def test_probe_image_jpeg_size_from_header(tmp_path, hw):
    import cv2

    from data_converters.base import jpeg_size
    img = write_img(tmp_path / 'a.jpg', gray(*hw))
    data = img.read_bytes()
    assert jpeg_size(data) == hw == cv2.imread(str(img)).shape[:2]
    assert probe_image(img) == hw
    # a frame header that claims more rows than the data hold: the same
    # answer as a full decode (libjpeg pads, as it does at full scale)
    i = data.index(b'\xff\xc0')
    bad = bytearray(data)
    bad[i + 5:i + 7] = (hw[0] + 64).to_bytes(2, 'big')
    (tmp_path / 'b.jpg').write_bytes(bytes(bad))
    assert jpeg_size(bytes(bad)) == (hw[0] + 64, hw[1])
    full = cv2.imread(str(tmp_path / 'b.jpg'), cv2.IMREAD_GRAYSCALE)
    assert probe_image(tmp_path / 'b.jpg') == full.shape[:2]
    assert jpeg_size(b'\xff\xd8\xff\xda\x00\x02') is None
