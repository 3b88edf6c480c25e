# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""FID / IS: closed forms, FID(X, X) = 0, IS >= 1, local weights only."""
import imdd_mm  # noqa: F401,I001

import numpy as np
import pytest
import torch

from imdd_mm.generation import (FIDISCalculator, build_inception,
                                compute_fid, frechet_distance,
                                inception_score)


def test_frechet_distance_closed_form():
    d = 6
    mu1, mu2 = np.zeros(d), np.full(d, 2.0)
    # ||mu1 - mu2||^2 + tr(I + 4I - 2 * 2I) = 4d + d
    fid = frechet_distance(mu1, np.eye(d), mu2, 4 * np.eye(d))
    assert fid == pytest.approx(5 * d)
    rng = np.random.RandomState(0)
    a = rng.randn(50, 8)
    assert compute_fid(a, a) == pytest.approx(0.0, abs=1e-9)
    assert compute_fid(a, a + 1.0) == pytest.approx(8.0, rel=1e-6)
    # rank-deficient covariances (fewer samples than dims) stay exact
    b = rng.randn(5, 40)
    assert compute_fid(b, b) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        compute_fid(a[:1], a)


def test_inception_score_closed_form():
    assert inception_score(np.zeros((10, 5)), splits=1)[0] == \
        pytest.approx(1.0)
    confident = np.full((4, 4), -50.0)
    confident[np.arange(4), np.arange(4)] = 50.0
    assert inception_score(confident, splits=1)[0] == pytest.approx(4.0)
    rng = np.random.RandomState(0)
    mean, std = inception_score(rng.randn(40, 10) * 3, splits=4)
    assert mean >= 1.0 and std >= 0.0


def test_fid_is_from_local_weights(inception_weights):
    calc = FIDISCalculator(str(inception_weights), batch_size=8)
    calc.extractor.resize = 75  # the smallest input; keeps the test fast
    rng = np.random.RandomState(0)
    real = [rng.randint(0, 255, (48, 48, 3), np.uint8) for _ in range(8)]
    fake = [np.clip(r.astype(int) // 3 + 100, 0, 255).astype(np.uint8)
            for r in real]
    scores = calc(fake, real)
    assert scores['IS'] >= 1.0 and scores['num_generated'] == 8
    pool_r, logits_r = calc.features(real)
    assert pool_r.shape == (8, 2048) and logits_r.shape == (8, 1000)
    assert np.isfinite(pool_r).all()
    self_fid = compute_fid(pool_r, pool_r)
    assert scores['FID'] > 0
    assert self_fid <= 1e-9 * scores['FID']
    # the same images give the same features (eval mode, no randomness)
    again, _ = calc.features(np.stack(real))
    assert np.allclose(again, pool_r)


def test_weights_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        build_inception(str(tmp_path / 'missing.pth'))
    bad = tmp_path / 'bad.pth'
    torch.save({'fc.weight': torch.zeros(2, 2)}, bad)
    with pytest.raises(RuntimeError, match='bad.pth'):
        build_inception(str(bad))
