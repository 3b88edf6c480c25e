# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Image normalisation and the instance / heat-map overlays."""
import cv2
import numpy as np
import pytest

from imdd_mm.visualization.overlay import (PALETTE, draw_heatmap,
                                           draw_instances, encode_png,
                                           to_rgb_uint8)


def test_to_rgb_uint8_gray_and_bgr():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    out = to_rgb_uint8(gray)
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    assert (out == gray[..., None]).all()
    assert np.array_equal(to_rgb_uint8(gray[..., None]), out)
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 200  # blue in BGR
    rgb = to_rgb_uint8(bgr)
    assert (rgb[..., 2] == 200).all() and (rgb[..., :2] == 0).all()
    assert bgr[..., 0].max() == 200  # input untouched


def test_to_rgb_uint8_16bit_and_float_rescaled():
    # a low-contrast 12-bit sensor image stored in 16 bits stays visible
    deep = np.array([[1000, 1100], [1200, 1300]], np.uint16)
    out = to_rgb_uint8(deep)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out[0, 0, 0] == 0 and out[1, 1, 0] == 255
    assert out[0, 1, 0] == 85  # linear: 100/300 * 255
    flt = np.array([[0.0, 0.5], [0.25, 1.0]], np.float32)
    out = to_rgb_uint8(flt)
    assert list(out[..., 0].ravel()) == [0, 128, 64, 255]
    flat = np.full((3, 3), 7, np.uint16)
    assert (to_rgb_uint8(flat) == 0).all()


def test_to_rgb_uint8_alpha():
    bgra = np.zeros((2, 2, 4), np.uint8)
    bgra[..., 2] = 200  # red
    bgra[..., 3] = [[255, 0], [128, 255]]
    out = to_rgb_uint8(bgra)
    assert out.shape == (2, 2, 3)
    assert list(out[..., 0].ravel()) == [200, 0, 100, 200]
    assert (out[..., 1:] == 0).all()
    # 16-bit BGRA: the opaque alpha (65535) must not darken the colours
    deep = np.zeros((2, 2, 4), np.uint16)
    deep[..., :3] = np.array([[100, 200], [300, 400]], np.uint16)[..., None]
    deep[..., 3] = 65535
    out = to_rgb_uint8(deep)
    assert out[1, 1, 0] == 255 and out[0, 0, 0] == 0
    # gray + alpha
    ga = np.zeros((1, 2, 2), np.uint8)
    ga[..., 0] = 100
    ga[..., 1] = [255, 0]
    assert to_rgb_uint8(ga)[0, :, 0].tolist() == [100, 0]
    with pytest.raises(ValueError, match='shape'):
        to_rgb_uint8(np.zeros((2, 2, 5), np.uint8))


def test_draw_instances_changes_only_masked_and_outlined_pixels():
    image = np.full((40, 50, 3), 100, np.uint8)
    masks = np.zeros((2, 40, 50), bool)
    masks[0, 5:15, 5:15] = True
    masks[1, 25:35, 30:45] = True
    out = draw_instances(image, masks, labels=[0, 3])
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (image == 100).all()  # input untouched
    changed = (out != image).any(-1)
    assert changed[masks[0]].all() and changed[masks[1]].all()
    assert not changed[~(masks[0] | masks[1])].any()
    # instance colours follow the palette
    inner0 = out[10, 10].astype(int)
    inner1 = out[30, 37].astype(int)
    expect0 = (100 * 0.55 + PALETTE[0].astype(float) * 0.45).round()
    expect1 = (100 * 0.55 + PALETTE[3].astype(float) * 0.45).round()
    assert np.abs(inner0 - expect0).max() <= 1
    assert np.abs(inner1 - expect1).max() <= 1


def test_draw_instances_boxes_names_and_resized_masks():
    image = np.zeros((60, 80, 3), np.uint8)
    boxes = np.array([[10, 10, 40, 30], [50, 40, 70, 55]], np.float32)
    out = draw_instances(image, None, labels=[1, 2],
                         names=['scratch', 'crack', 'stain'],
                         scores=[0.9, 0.4], boxes=boxes)
    assert (out[10, 10:41] == PALETTE[1]).all()  # top edge of box 0
    assert (out[55, 50:71] == PALETTE[2]).all()  # bottom edge of box 1
    assert out[:10, 10:40].any()  # caption above box 0
    assert not out[12:29, 12:39].any()  # nothing inside the box
    no_scores = draw_instances(image, None, labels=[1, 2],
                               names=['scratch', 'crack', 'stain'],
                               boxes=boxes)
    assert (no_scores != out).any()  # "crack 0.90" vs "crack"
    # masks at half resolution are scaled to the image
    small = np.zeros((1, 30, 40), bool)
    small[0, 10:20, 10:20] = True
    out = draw_instances(image, small, labels=[0])
    changed = out.any(-1)
    assert changed[20:40, 20:40].all() and not changed[45:, 45:].any()
    # no instance at all
    empty = draw_instances(image, np.zeros((0, 60, 80), bool), [], [])
    assert np.array_equal(empty, image)


def test_draw_heatmap():
    image = np.full((16, 20, 3), 128, np.uint8)
    scores = np.zeros((16, 20), np.float32)
    scores[:, 10:] = 1.0
    out = draw_heatmap(image, scores, alpha=0.5)
    assert out.shape == image.shape and out.dtype == np.uint8
    left, right = out[8, 2].astype(int), out[8, 15].astype(int)
    assert left[2] > left[0]  # blue: low score
    assert right[0] > right[2]  # red: high score
    # a score map at another resolution is resized to the image
    half = draw_heatmap(image, scores[::2, ::2])
    assert half.shape == image.shape
    assert np.abs(half.astype(int) - out.astype(int))[:, :8].max() <= 2
    # encode_png round-trips RGB
    back = cv2.imdecode(np.frombuffer(encode_png(out), np.uint8),
                        cv2.IMREAD_COLOR)[..., ::-1]
    assert np.array_equal(back, out)
