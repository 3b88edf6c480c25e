# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Pieces of the FAIR-style model (frequency_restoration.py,
synthetic_anomalies.py, source_augmenters.py) against values computed
independently here (PIL, colorsys, cv2, integer arithmetic)."""
import colorsys
import math

import numpy as np
import pytest
import torch

from imdd_mm.models.anomaly.frequency_restoration import (
    AdditiveSkipUNet, FrequencyRestorationAD, butterworth_high_pass,
    msgms_map, rgb_to_lab, ssim_map)
from imdd_mm.models.anomaly import source_augmenters as sa
from imdd_mm.models.anomaly.synthetic_anomalies import (
    _cells, cut_paste, list_textures, perlin_mask, perlin_noise,
    random_rotate, synthesize_anomalies)


def test_butterworth_matches_centred_spectrum_formula():
    """Against the textbook filter on the fftshift-ed spectrum, distances
    in frequency bins, cut-off 30 bins at 256 px, order 2 (numpy)."""
    rng = np.random.default_rng(0)
    img = rng.random((256, 256))
    spec = np.fft.fftshift(np.fft.fft2(img))
    yy, xx = np.ogrid[:256, :256]
    dist = np.sqrt((yy - 128.0)**2 + (xx - 128.0)**2)
    gain = np.zeros_like(dist)
    nz = dist > 0
    gain[nz] = 1.0 / (1.0 + (30.0 / dist[nz])**4)
    ref = np.real(np.fft.ifft2(np.fft.ifftshift(spec * gain)))
    out = butterworth_high_pass(
        torch.from_numpy(img)[None, None].float(), cutoff=30 / 256, order=2)
    assert np.allclose(out[0, 0].numpy(), ref, atol=1e-4)


def test_butterworth_gain_on_pure_tones():
    xx = torch.arange(32.0).view(1, -1).expand(32, 32)
    const = torch.full((32, 32), 0.7)
    tone = torch.cos(2 * math.pi * 0.25 * xx)  # 0.25 cycles / pixel
    out = butterworth_high_pass(torch.stack([const, tone])[None], 30 / 256)
    assert out[0, 0].abs().max() < 1e-5  # DC removed
    gain = 1.0 / (1.0 + ((30 / 256) / 0.25)**4)  # = 0.95394
    assert torch.allclose(out[0, 1], gain * tone, atol=1e-4)


def test_ssim_of_constant_images():
    """Constant images a, b: SSIM = (2ab + c1) / (a^2 + b^2 + c1) away from
    the zero-padded border (variances vanish)."""
    a, b = 0.6, 0.3
    x = torch.full((1, 2, 40, 40), a, dtype=torch.float64)
    y = torch.full((1, 2, 40, 40), b, dtype=torch.float64)
    c1 = 0.01**2
    expect = (2 * a * b + c1) / (a * a + b * b + c1)
    s = ssim_map(x, y)
    assert torch.allclose(s[..., 10:30, 10:30],
                          torch.full_like(s[..., 10:30, 10:30], expect),
                          atol=1e-5)
    assert torch.allclose(ssim_map(x, x)[..., 10:30, 10:30],
                          torch.ones(1, 2, 20, 20, dtype=torch.float64),
                          atol=1e-5)


def test_msgms_of_scaled_ramp():
    """x = alpha * column, y = 2 x: Prewitt/3 gradient 2 alpha (scale 1)
    and 4 alpha (scale 2, pooled pixels are 2 columns apart), so inside the
    image MSGMS = 1 - mean over scales of (2 g 2g + c) / (g^2 + 4 g^2 + c)."""
    alpha, c = 0.01, 0.0026
    col = torch.arange(64.0).view(1, 1, 1, -1).expand(1, 1, 64, 64)
    x = alpha * col
    out = msgms_map(x, 2 * x, num_scales=2, c=c)
    gms = [(4 * g * g + c) / (5 * g * g + c)
           for g in (2 * alpha, 4 * alpha)]
    expect = 1.0 - sum(gms) / 2
    inner = out[0, 8:56, 8:56]
    assert torch.allclose(inner, torch.full_like(inner, expect), atol=1e-4)
    assert msgms_map(x, x).abs().max() < 1e-6


def test_rgb_to_lab_known_values_and_opencv():
    import cv2
    rgb = torch.tensor([[1., 1., 1.], [1., 0., 0.], [0., 1., 0.],
                        [0., 0., 1.]]).t().reshape(1, 3, 4, 1)
    lab = rgb_to_lab(rgb)[0, :, :, 0].t()
    known = torch.tensor([[100.0, 0.0, 0.0], [53.24, 80.09, 67.20],
                          [87.73, -86.18, 83.18], [32.30, 79.19, -107.86]])
    assert torch.allclose(lab, known, atol=0.02)
    img = np.random.default_rng(1).random((6, 7, 3)).astype(np.float32)
    ref = cv2.cvtColor(img, cv2.COLOR_RGB2Lab)  # sRGB gamma, D65
    ours = rgb_to_lab(torch.from_numpy(img).permute(2, 0, 1)[None])[0]
    assert np.abs(ours.permute(1, 2, 0).numpy() - ref).max() < 0.25


def test_additive_skip_unet_widths_and_shapes():
    net = AdditiveSkipUNet(1, 3, base_channels=2, num_stages=5)
    widths = [block[0].out_channels for block in net.encoder]
    assert widths == [2, 4, 8, 16, 16]
    # the decoder block of skip level j ends with the width of level j-1
    assert [d[3].out_channels for d in net.dec] == [8, 4, 2, 2]
    assert net(torch.zeros(2, 1, 32, 48)).shape == (2, 3, 32, 48)
    with pytest.raises(ValueError, match='divisible by 16'):
        net(torch.zeros(1, 1, 24, 32))


def test_perlin_noise_vanishes_on_the_lattice():
    g = torch.Generator().manual_seed(0)
    noise = perlin_noise((32, 64), (4, 8), g)
    assert noise.shape == (32, 64)
    assert noise[::8, ::8].abs().max() < 1e-6  # gradient noise: 0 at nodes
    assert noise.abs().max() <= math.sqrt(2) + 1e-6
    assert noise.std() > 0.1
    with pytest.raises(ValueError):
        perlin_noise((30, 64), (4, 8))


def test_cut_paste_changes_only_the_pasted_rectangle():
    g = torch.Generator().manual_seed(3)
    img = torch.rand(3, 40, 40, generator=g)
    for _ in range(5):
        out, mask = cut_paste(img, g)
        outside = mask[0] == 0
        assert torch.equal(out[:, outside], img[:, outside])
        if mask.any():
            rows = mask[0].any(dim=1).nonzero()
            cols = mask[0].any(dim=0).nonzero()
            h = int(rows.max() - rows.min() + 1)
            w = int(cols.max() - cols.min() + 1)
            assert int(mask.sum()) == h * w  # a rectangle
            assert h % 2 == 0 and w % 2 == 0


def test_synthesize_anomalies_keeps_half_the_images():
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(200, 3, 16, 16, generator=g)
    out = synthesize_anomalies(imgs, g)
    unchanged = sum(bool(torch.equal(a, b)) for a, b in zip(imgs, out))
    # 1/2 kept plus empty draws (Perlin masks can be empty): >= 1/2,
    # binomial(200, 1/2) sd = 7
    assert 79 <= unchanged <= 150


def test_fair_scores_and_bound():
    torch.manual_seed(0)
    model = FrequencyRestorationAD(base_channels=4, num_stages=3,
                                   mean_filter_size=3)
    model.eval()
    with torch.no_grad():  # red below 0, blue above 1: outside [0, 1]
        model.restorer.head.bias.copy_(torch.tensor([-0.3, 0.4, 1.2]))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    maps, scores = model.anomaly_maps(x)
    assert maps.shape == (2, 16, 16)
    assert torch.allclose(scores, maps.flatten(1).max(dim=1).values)
    bound = 1 + 0.0003 * 2 * 256**2
    assert torch.allclose(model.normalize_scores(scores), scores / bound)
    with pytest.raises(ValueError, match='odd'):
        FrequencyRestorationAD(mean_filter_size=4)
    # the map: MSGMS + 0.0003 x CIELAB a/b squared error of the raw
    # restoration, the colour term of the channel-reversed images (the
    # original's BGR-into-RGB-to-Lab quirk), averaged by the 3 x 3 mean
    # filter (checked inside)
    x01 = (x + 1) / 2
    with torch.no_grad():
        rec = model.restorer(model.high_pass(x01))
    raw = msgms_map(rec, x01)
    bgr, rec_bgr = x01[:, [2, 1, 0]], rec[:, [2, 1, 0]]
    lab = ((rgb_to_lab(bgr) - rgb_to_lab(rec_bgr))[:, 1:]**2).sum(dim=1)
    colour = torch.nn.functional.avg_pool2d(lab[:, None], 3, 1, 0)[:, 0]
    inner = torch.nn.functional.avg_pool2d(raw[:, None], 3, 1, 0)[:, 0]
    assert torch.allclose(maps[:, 1:-1, 1:-1], inner + 0.0003 * colour,
                          atol=1e-5)
    assert (rec < 0).any() and (rec > 1).any()  # not clamped: a real check


# ------------------------------------------------- anomaly-source augmenters
def _img(seed=0, shape=(7, 9, 3), lo=0, hi=256):
    return np.random.default_rng(seed).integers(lo, hi, shape).astype(
        np.uint8)


def test_gamma_contrast_per_channel():
    img = _img()
    out = sa.gamma_contrast(img, (0.5, 1.0, 2.0))
    for ch, gamma in enumerate((0.5, 1.0, 2.0)):
        for v, o in zip(img[..., ch].ravel(), out[..., ch].ravel()):
            assert o == math.floor(255 * (v / 255)**gamma)


@pytest.mark.parametrize('space', ['YCrCb', 'HSV', 'HLS', 'YUV'])
def test_multiply_add_brightness_on_gray(space):
    """Gray pixels: the brightness channel of these spaces is the gray
    value itself, so the output is gray ``clip(round(v * mul)) + add``
    (or ``round(clip(v + add) * mul)``)."""
    v = np.array([0, 10, 100, 200, 250])
    img = np.repeat(v[None, :, None], 3, axis=2).astype(np.uint8)
    out = sa.multiply_add_brightness(img, space, 1.15, -20, False)
    ref = np.clip(np.clip(np.round(v * 1.15), 0, 255) - 20, 0, 255)
    assert np.abs(out[0].astype(int) - ref[:, None]).max() <= 1
    out = sa.multiply_add_brightness(img, space, 0.85, 25, True)
    ref = np.clip(np.round(np.clip(v + 25, 0, 255) * 0.85), 0, 255)
    assert np.abs(out[0].astype(int) - ref[:, None]).max() <= 1


@pytest.mark.parametrize('factor', [0.0, 0.5, 1.0, 1.7])
def test_enhance_sharpness_matches_pil(factor):
    from PIL import Image, ImageEnhance
    img = _img(1, (8, 9, 3))
    ref = np.asarray(ImageEnhance.Sharpness(
        Image.fromarray(img)).enhance(factor))
    out = sa.enhance_sharpness(img, factor)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def _hsv_ref(rgb, dh_deg=0.0, ds=0, clip_hue=None):
    h, s, v = colorsys.rgb_to_hsv(*(np.asarray(rgb) / 255.0))
    hue = h * 360 + dh_deg
    hue = hue % 360 if clip_hue is None else clip_hue
    s = min(max(s + ds / 255.0, 0.0), 1.0)
    return np.array(colorsys.hsv_to_rgb(hue / 360 % 1.0, s, v)) * 255


def test_add_hue_saturation_against_colorsys():
    img = np.array([[[255, 0, 0], [40, 200, 90]]], np.uint8)
    out = sa.add_hue_saturation(img, 50, -50)
    # +50 on imgaug's 0..255 hue scale = int(50 * 180 / 255) = 35 OpenCV
    # units = 70 degrees
    for i in range(2):
        ref = _hsv_ref(img[0, i], 70.0, -50)
        assert np.abs(out[0, i] - ref).max() <= 4
    back = sa.add_hue_saturation(img, -50, 0)
    assert np.abs(back[0, 0] - _hsv_ref(img[0, 0], -70.0)).max() <= 4


def test_add_hue_clipped_clips_then_opencv_wraps():
    red = np.array([[[255, 0, 0]]], np.uint8)
    assert np.abs(sa.add_hue_clipped(red, 90)[0, 0].astype(int) -
                  [0, 255, 255]).max() <= 1  # hue 0 + 90 units = cyan
    # hue 170 units (340 deg) + 90 = 260, clipped to 255; OpenCV reads
    # 255 units as 510 deg = 150 deg
    pink = np.round(_hsv_ref([255, 0, 0], 340.0)).astype(np.uint8)
    out = sa.add_hue_clipped(pink[None, None], 90)[0, 0]
    assert np.abs(out - _hsv_ref(pink, clip_hue=150.0)).max() <= 6


def test_solarize_posterize_invert_integer_reference():
    v = np.array([0, 31, 32, 99, 100, 200, 255], np.uint8)[None, :, None]
    assert sa.solarize(v, 100.0).ravel().tolist() == [
        0, 31, 32, 99, 155, 55, 0]
    for bits in range(1, 9):
        ref = [(int(x) >> (8 - bits)) << (8 - bits) for x in v.ravel()]
        assert sa.posterize(v, bits).ravel().tolist() == ref
    assert sa.invert(v).ravel().tolist() == [255 - int(x) for x in v.ravel()]


@pytest.mark.parametrize('cutoff', [0, 3, 20])
def test_autocontrast_matches_pil(cutoff):
    from PIL import Image, ImageOps
    img = _img(2, (9, 11, 3), 40, 170)
    img[0, 0] = (0, 255, 7)  # outliers the cut-off removes
    ref = np.asarray(ImageOps.autocontrast(Image.fromarray(img), cutoff))
    assert np.array_equal(sa.autocontrast(img, cutoff), ref)


def test_equalize_matches_pil():
    from PIL import Image, ImageOps
    rng = np.random.default_rng(3)
    img = (rng.beta(2, 5, (10, 12, 3)) * 255).astype(np.uint8)
    img[..., 2] = 77  # a constant channel stays as it is
    ref = np.asarray(ImageOps.equalize(Image.fromarray(img)))
    assert np.array_equal(sa.equalize(img), ref)


def test_dropout_channels_keeps_one():
    img = _img(4)
    assert np.array_equal(sa.dropout_channels(img, [True, False, True]),
                          img * np.array([0, 1, 0], np.uint8))
    g = torch.Generator().manual_seed(0)
    kept = [(sa.AUGMENTERS['dropout_channels'](img, g).reshape(-1, 3) !=
             0).any(0).sum() for _ in range(60)]
    assert min(kept) >= 1 and max(kept) == 3 and 1 in kept


@pytest.mark.parametrize('hw', [(5, 7), (8, 8)])
@pytest.mark.parametrize('degrees', [30.0, -75.0])
def test_rotate_matches_cv2(hw, degrees):
    """About the centre, bilinear, zero fill; positive = clockwise on
    screen, i.e. cv2's matrix of the negated angle."""
    import cv2
    img = np.random.default_rng(5).random(hw).astype(np.float32)
    matrix = cv2.getRotationMatrix2D(((hw[1] - 1) / 2, (hw[0] - 1) / 2),
                                     -degrees, 1.0)
    ref = cv2.warpAffine(img, matrix, hw[::-1], flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = sa.rotate(torch.from_numpy(img), degrees).numpy()
    assert np.abs(out - ref).max() < 0.04  # cv2 quantises weights (1/32)


def test_rotate_quarter_turn_and_corner():
    x = torch.rand(2, 6, 6)
    assert torch.allclose(sa.rotate(x, 90.0), torch.rot90(x, -1, (1, 2)),
                          atol=1e-5)
    assert torch.allclose(sa.rotate(x, 0.0), x, atol=1e-6)
    # about the top-left corner: that pixel stays, the image turns away
    out = sa.rotate(x, 45.0, center=(0.0, 0.0))
    assert torch.allclose(out[:, 0, 0], x[:, 0, 0], atol=1e-5)
    assert (out[:, 0, 2:] == 0).all()  # turned towards +y: row 0 empties


def test_augmenter_lists_of_the_original():
    assert len(sa.TEXTURE_AUGMENTERS) == 10
    assert set(sa.SELF_AUGMENTERS) == set(sa.TEXTURE_AUGMENTERS) | {
        'add_hue_clipped', 'dropout_channels'}
    assert set(sa.AUGMENTERS) == set(sa.SELF_AUGMENTERS)
    img = _img(6, (16, 16, 3))
    g = torch.Generator().manual_seed(0)
    for name, fn in sa.AUGMENTERS.items():
        out = fn(img, g)
        assert out.shape == img.shape and out.dtype == np.uint8, name


def test_augment_source_applies_three_distinct(monkeypatch):
    calls = []
    for name in sa.AUGMENTERS:
        monkeypatch.setitem(
            sa.AUGMENTERS, name,
            lambda img, g, name=name: calls.append(name) or img)
    orders = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        calls.clear()
        sa.augment_source(_img(), sa.TEXTURE_AUGMENTERS, g)
        assert len(calls) == 3 == len(set(calls))
        assert set(calls) <= set(sa.TEXTURE_AUGMENTERS)
        orders.add(tuple(calls))
    assert len(orders) > 10


# ---------------------------------------------- rotations, Perlin, textures
def test_perlin_mask_is_the_rotated_noise():
    import cv2
    for seed in range(4):
        mask = perlin_mask((32, 48), torch.Generator().manual_seed(seed))
        g = torch.Generator().manual_seed(seed)  # same draws, by hand
        res = (_cells(32, g), _cells(48, g))
        noise = perlin_noise((32, 48), res, g).numpy()
        angle = -90.0 + 180.0 * float(
            torch.rand(1, generator=g, dtype=torch.float64))
        matrix = cv2.getRotationMatrix2D((23.5, 15.5), -angle, 1.0)
        ref = cv2.warpAffine(noise, matrix, (48, 32), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0) > 0.5
        assert (mask.numpy().astype(bool) != ref).mean() < 0.01


def test_random_rotate_probability_and_black_corners():
    g = torch.Generator().manual_seed(0)
    ones = torch.ones(400, 1, 32, 32)
    out = random_rotate(ones, 0.3, g)
    rotated = (out != 1).flatten(1).any(1)
    assert 90 <= int(rotated.sum()) <= 150  # binomial(400, 0.3): sd 9
    assert (out[rotated].flatten(1).mean(1) < 1).all()  # corners lost
    # black corners unless within ~3 degrees of 0 or +-90 (~7 %)
    assert (out[rotated][:, 0, 0, 0] < 0.5).float().mean() > 0.8
    assert torch.equal(random_rotate(ones[:5], 0.0, g), ones[:5])


def test_synthesis_is_deterministic_under_a_seed():
    imgs = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(7)
    a = synthesize_anomalies(imgs)
    torch.manual_seed(7)
    b = synthesize_anomalies(imgs)
    assert torch.equal(a, b)
    c = synthesize_anomalies(imgs, torch.Generator().manual_seed(7))
    d = synthesize_anomalies(imgs, torch.Generator().manual_seed(7))
    assert torch.equal(c, d)
    assert not torch.equal(a, imgs)


def _fake_dtd(root, n_per_class=2, size=(20, 24)):
    """DTD's layout: dtd/images/<category>/<category>_<id>.jpg."""
    import cv2
    images = root / 'dtd' / 'images'
    for ci, cat in enumerate(('banded', 'zigzagged')):
        (images / cat).mkdir(parents=True)
        for i in range(n_per_class):
            img = np.zeros((*size, 3), np.uint8)
            img[..., ci] = 255  # blue / green textures (BGR)
            img[::3] = 40 * i
            cv2.imwrite(str(images / cat / f'{cat}_{i:04d}.jpg'), img)
    (root / 'dtd' / 'labels').mkdir()
    return images


def test_texture_dir_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing_dtd'):
        list_textures(str(tmp_path / 'missing_dtd'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='empty.*dtd/images'):
        list_textures(str(tmp_path / 'empty'))
    images = _fake_dtd(tmp_path)
    with pytest.raises(FileNotFoundError, match='dtd/images'):
        list_textures(str(images.parent))  # the parent, not images/
    paths = list_textures(str(images))
    assert [p.split('/')[-1] for p in paths] == [
        'banded_0000.jpg', 'banded_0001.jpg', 'zigzagged_0000.jpg',
        'zigzagged_0001.jpg']
    with pytest.raises(FileNotFoundError, match='missing_dtd'):
        FrequencyRestorationAD(texture_dir=str(tmp_path / 'missing_dtd'))
    with pytest.raises(ValueError, match='texture_dir'):
        FrequencyRestorationAD(texture_dir=str(images),
                               synthetic_anomalies=False)
    with pytest.raises(ValueError, match='rotate_prob'):
        FrequencyRestorationAD(rotate_prob=1.5)


def test_unreadable_texture_is_named(tmp_path):
    bad = tmp_path / 'images' / 'cracked'
    bad.mkdir(parents=True)
    (bad / 'cracked_0001.jpg').write_bytes(b'not a jpeg')
    paths = list_textures(str(tmp_path / 'images'))
    imgs = torch.rand(8, 3, 16, 16)
    with pytest.raises(OSError, match='cracked_0001.jpg'):
        for seed in range(10):  # until a Perlin branch draws it
            synthesize_anomalies(imgs, torch.Generator().manual_seed(seed),
                                 textures=paths)


def test_texture_sources_reach_the_images(tmp_path):
    """Gray images, coloured textures: only a Perlin branch with a DTD
    source can make pixels coloured (cut-paste moves gray pixels)."""
    paths = list_textures(str(_fake_dtd(tmp_path)))
    imgs = torch.rand(32, 1, 16, 16).expand(32, 3, 16, 16).contiguous()
    out = synthesize_anomalies(imgs, torch.Generator().manual_seed(0),
                               textures=paths)
    coloured = (out.max(1).values - out.min(1).values > 0.05).flatten(1)
    assert coloured.any(1).sum() >= 2


def test_fair_training_step_with_textures_and_rotation(tmp_path):
    from mmengine.optim import OptimWrapper
    torch.manual_seed(0)
    images = _fake_dtd(tmp_path)
    for texture_dir in (str(images), None):
        model = FrequencyRestorationAD(base_channels=4, num_stages=3,
                                       mean_filter_size=3,
                                       texture_dir=texture_dir)
        assert (model.textures is None) == (texture_dir is None)
        assert not any('texture' in k for k in model.state_dict())
        optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-3))
        model.train()
        batch = dict(inputs=[torch.randint(0, 256, (3, 32, 32),
                                           dtype=torch.uint8)
                             for _ in range(4)],
                     data_samples=None)
        losses = [float(model.train_step(batch, optim)['loss'])
                  for _ in range(2)]
        assert all(np.isfinite(losses))


def test_rotate_uint8_matches_cv2_on_uint8():
    """The Affine(rotate) augmenter: cv2's uint8 rotation (rounded)."""
    import cv2
    img = _img(7, (9, 12, 3))
    matrix = cv2.getRotationMatrix2D((5.5, 4.0), -40.0, 1.0)
    ref = cv2.warpAffine(img, matrix, (12, 9), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = sa.rotate_uint8(img, 40.0)
    assert out.dtype == np.uint8
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 8  # 1/32 wts
    assert np.abs(out.astype(int) - ref.astype(int)).mean() < 1
