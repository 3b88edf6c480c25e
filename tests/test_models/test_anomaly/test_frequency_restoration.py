# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Pieces of the FAIR-style model (frequency_restoration.py,
synthetic_anomalies.py) against values computed independently here."""
import math

import numpy as np
import pytest
import torch

from imdd_mm.models.anomaly.frequency_restoration import (
    AdditiveSkipUNet, FrequencyRestorationAD, butterworth_high_pass,
    msgms_map, rgb_to_lab, ssim_map)
from imdd_mm.models.anomaly.synthetic_anomalies import (cut_paste,
                                                        perlin_noise,
                                                        synthesize_anomalies)


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
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    maps, scores = model.anomaly_maps(x)
    assert maps.shape == (2, 16, 16)
    assert torch.allclose(scores, maps.flatten(1).max(dim=1).values)
    bound = 1 + 0.0003 * 2 * 256**2
    assert torch.allclose(model.normalize_scores(scores), scores / bound)
    with pytest.raises(ValueError, match='odd'):
        FrequencyRestorationAD(mean_filter_size=4)
    # the map: MSGMS + 0.0003 x CIELAB a/b squared error of the clamped
    # restoration, averaged by the 3 x 3 mean filter (checked inside)
    x01 = (x + 1) / 2
    with torch.no_grad():
        rec = model.restorer(model.high_pass(x01)).clamp(0, 1)
    raw = msgms_map(rec, x01)
    inner = torch.nn.functional.avg_pool2d(raw[:, None], 3, 1, 0)[:, 0]
    lab = ((rgb_to_lab(x01) - rgb_to_lab(rec))[:, 1:]**2).sum(dim=1)
    colour = torch.nn.functional.avg_pool2d(lab[:, None], 3, 1, 0)[:, 0]
    assert torch.allclose(maps[:, 1:-1, 1:-1], inner + 0.0003 * colour,
                          atol=1e-5)
