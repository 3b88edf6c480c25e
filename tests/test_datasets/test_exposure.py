# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import numpy as np
import pytest

import imdd_mm  # noqa: F401
from mmdet.registry import TRANSFORMS


def build(**kwargs):
    return TRANSFORMS.build(dict(type='NormalizeExposure', **kwargs))


def test_two_grey_levels_map_to_mean_plus_minus_std():
    # mean 120, std 20 -> -1 and +1 standard deviations -> 128 -/+ 32
    img = np.array([[100, 140], [100, 140]], np.uint8)
    out = build().transform(dict(img=img))
    np.testing.assert_array_equal(out['img'], [[96, 160], [96, 160]])
    assert out['img'].dtype == np.uint8
    assert out['exposure_mean'] == pytest.approx(120.0)
    assert out['exposure_std'] == pytest.approx(20.0)


def test_gain_and_offset_are_removed():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, (16, 16, 3))
    dark = np.clip(60 + 8 * base, 0, 255)
    bright = np.clip(150 + 16 * base, 0, 255)  # same scene, other exposure
    t = build(target_mean=100, target_std=10)
    out_dark, _, _ = t.normalize(dark)
    out_bright, _, _ = t.normalize(bright)
    assert out_dark.dtype == np.float64  # float stays float, not clipped
    np.testing.assert_allclose(out_dark, out_bright, atol=1e-9)
    assert out_dark.mean() == pytest.approx(100.0)
    assert out_dark.std() == pytest.approx(10.0)


def test_uniform_image_is_shifted_not_amplified():
    img = np.full((4, 5, 3), 50, np.uint8)
    img[0, 0, 0] = 51  # std ~0.08 < min_std 1
    out, _, std = build(min_std=1.0).normalize(img)
    assert std < 1.0
    expected = np.rint((img.astype(float) - img.mean()) * 32 + 128)
    np.testing.assert_array_equal(out, expected.astype(np.uint8))


def test_clipped_to_uint8_range():
    img = np.array([0, 0, 0, 255], np.uint8)  # +1.73 std -> 183.4; -0.58 -> 109.5
    out, mean, std = build(target_std=100).normalize(img)
    ref = np.clip(np.rint((img - mean) / std * 100 + 128), 0, 255)
    np.testing.assert_array_equal(out, ref)
    assert out.max() == 255 and ref.max() == 255


@pytest.mark.parametrize('kwargs', [dict(target_mean=300), dict(target_std=0),
                                    dict(min_std=-1), dict(target_men=1)])
def test_bad_arguments_fail(kwargs):
    with pytest.raises((ValueError, TypeError)):
        build(**kwargs)


def test_empty_image_fails():
    with pytest.raises(ValueError, match='empty'):
        build().normalize(np.zeros((0, 3), np.uint8))
