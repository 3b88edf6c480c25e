# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import numpy as np
import pytest

from imdd_mm.evaluation.functional import (StreamingAUROC,
                                           StreamingPixelCurves, aupro,
                                           aupro_exact, auroc_exact,
                                           image_auroc, label_regions,
                                           partial_curve_area, pixel_auroc)


def random_maps(n=12, hw=48, seed=0):
    """Score maps with several 8-connected regions per defective image."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, hw, hw), bool)
    for i in range(n):
        if i % 4 == 3:  # some normal images
            continue
        for _ in range(int(rng.integers(2, 5))):
            y, x = rng.integers(0, hw - 8, 2)
            h, w = rng.integers(1, 8, 2)
            masks[i, y:y + h, x:x + w] = True
    scores = rng.beta(2, 4, masks.shape) + 0.4 * masks * rng.random(
        masks.shape)
    return np.clip(scores, 0, 1).astype(np.float32), masks


def test_auroc_exact_toy():
    # classic example: 3 of 4 positive/negative pairs ordered correctly
    assert auroc_exact([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    # ties count one half: pairs (0.5+,0.5-) = 0.5, (0.5+,0.2-) = 1,
    # (0.8+,0.5-) = 1, (0.8+,0.2-) = 1 -> 3.5 / 4
    assert auroc_exact([0.5, 0.5, 0.2, 0.8], [1, 0, 0, 1]) == 0.875
    assert auroc_exact([0.2, 0.9], [1, 0]) == 0.0
    assert np.isnan(auroc_exact([0.2, 0.9], [1, 1]))


def test_auroc_exact_matches_sklearn():
    from sklearn.metrics import roc_auc_score
    scores, masks = random_maps()
    quant = np.round(scores, 2)  # many ties
    for s in (scores, quant):
        assert auroc_exact(s, masks) == pytest.approx(
            roc_auc_score(masks.ravel(), s.ravel()), abs=1e-12)


def test_label_regions_is_8_connected():
    mask = np.array([[1, 0, 0, 0],
                     [0, 1, 0, 0],
                     [0, 0, 0, 1],
                     [0, 0, 0, 1]], bool)
    labels, num = label_regions(mask)
    assert num == 2  # the diagonal pair is one region
    assert labels[0, 0] == labels[1, 1] != labels[2, 3]
    assert label_regions(np.zeros((3, 3), bool))[1] == 0


def test_aupro_toy_one_region():
    # region {0, 1} (scores .9, .4); normal pixels .5, .1
    # curve: (0,0) (0,.5) (.5,.5) (.5,1) (1,1)
    scores = np.array([[[0.9, 0.4, 0.5, 0.1]]])
    masks = np.array([[[1, 1, 0, 0]]], bool)
    assert aupro_exact(scores, masks, 0.3) == pytest.approx(0.5)
    assert aupro_exact(scores, masks, 1.0) == pytest.approx(0.75)
    # 0.6 cuts the flat top at pro = 1: (.5 * .5 + .1 * 1) / .6
    assert aupro_exact(scores, masks, 0.6) == pytest.approx(0.35 / 0.6)


def test_aupro_averages_regions_not_pixels():
    # region A: 1 pixel (.9); region B: 3 pixels (.2); normals .5, .1.
    # per-region overlap at t=.9 is (1 + 0) / 2 = .5 (per pixel it would
    # be 1/4), so the curve is the one of the previous test.
    scores = np.array([[[0.9, 0.5, 0.2, 0.2],
                        [0.1, 0.0, 0.0, 0.2]]])
    masks = np.array([[[1, 0, 1, 1],
                       [0, 0, 0, 1]]], bool)
    # zeros are normal pixels too: 2 normals at .5/.1 + 2 at 0
    # t=.9: fpr 0, pro .5; t=.5: fpr 1/4, pro .5; t=.2: pro 1, fpr 1/4;
    # t=.1: fpr 2/4; t=0: fpr 1
    assert aupro_exact(scores, masks, 1.0) == pytest.approx(
        0.25 * 0.5 + 0.75 * 1.0)
    assert aupro_exact(scores, masks, 0.2) == pytest.approx(0.5)
    # regions in different images count separately
    two = aupro_exact(np.concatenate([scores, scores]),
                      np.concatenate([masks, masks]), 1.0)
    assert two == pytest.approx(0.875)


def test_aupro_undefined_cases():
    s = np.random.default_rng(0).random((2, 4, 4))
    assert np.isnan(aupro_exact(s, np.zeros_like(s, bool)))
    assert np.isnan(aupro_exact(s, np.ones_like(s, bool)))
    with pytest.raises(ValueError, match='fpr_limit'):
        partial_curve_area(np.array([0, 1.]), np.array([0, 1.]), 0)
    with pytest.raises(ValueError, match='shape'):
        aupro(s, np.zeros((2, 4, 5), bool))


def test_aupro_matches_threshold_loop():
    """Independent reference: explicit loop over every distinct score."""
    scores, masks = random_maps(n=4, hw=16, seed=3)
    scores = np.round(scores, 2)
    regions = []
    for img, m in enumerate(masks):
        labels, num = label_regions(m)
        regions += [(img, labels == k) for k in range(1, num + 1)]
    fprs, pros = [0.0], [0.0]
    for t in np.unique(scores)[::-1]:
        pred = scores >= t
        fprs.append((pred & ~masks).sum() / (~masks).sum())
        pros.append(np.mean([pred[i][r].mean() for i, r in regions]))
    for limit in (0.05, 0.3, 1.0):
        ref = partial_curve_area(np.array(fprs), np.array(pros), limit)
        assert aupro_exact(scores, masks, limit) == pytest.approx(
            ref, abs=1e-12)


@pytest.mark.parametrize('seed', [0, 1])
def test_streaming_within_1e4_of_exact(seed):
    scores, masks = random_maps(n=16, hw=64, seed=seed)
    acc = StreamingPixelCurves()
    for s, m in zip(scores, masks):  # one map at a time
        acc.update(s, m)
    assert abs(acc.compute() - auroc_exact(scores, masks)) < 1e-4
    assert acc.max_error() < 1e-4
    for limit in (0.3, 0.05):
        assert abs(acc.aupro(limit) - aupro_exact(scores, masks, limit)) \
            < 1e-4
    # functional forms with num_bins use the same accumulator
    assert pixel_auroc(scores, masks, num_bins=2**18) == pytest.approx(
        acc.compute(), abs=1e-12)
    assert aupro(scores, masks, num_bins=2**18) == pytest.approx(
        acc.aupro(), abs=1e-12)


def test_streaming_equals_exact_on_quantised_scores():
    scores, masks = random_maps(n=6, hw=32, seed=5)
    q = np.floor(scores * 64) / 64  # every score is a bin edge
    acc = StreamingPixelCurves(num_bins=64)
    acc.update(q, masks)
    assert acc.compute() == pytest.approx(auroc_exact(q, masks), abs=1e-12)
    assert acc.aupro(0.3) == pytest.approx(aupro_exact(q, masks, 0.3),
                                           abs=1e-12)


def test_streaming_state_bounded_and_mergeable():
    scores, masks = random_maps(n=12, hw=32, seed=2)
    whole = StreamingPixelCurves(num_bins=4096, buffer_pixels=3000)
    parts = [StreamingPixelCurves(num_bins=4096) for _ in range(3)]
    for i, (s, m) in enumerate(zip(scores, masks)):
        whole.update(s, m)
        parts[i % 3].update(s, m)
        # state size does not depend on how many maps were added
        assert whole.pos_hist.size == whole.neg_hist.size == 4096 + 2
        assert whole._buffered < 3000 + s.size
    merged = parts[0].merge(parts[1]).merge(parts[2])
    state = StreamingPixelCurves.from_state_dict(merged.state_dict())
    assert state.compute() == pytest.approx(whole.compute(), abs=1e-15)
    assert state.aupro() == pytest.approx(whole.aupro(), abs=1e-15)
    with pytest.raises(ValueError, match='same type'):
        whole.merge(StreamingPixelCurves(num_bins=8))


def test_streaming_auroc_scalar_and_clipping():
    acc = StreamingAUROC(num_bins=1000, score_range=(0, 10))
    acc.update([1.0, 4.0, 3.5, 8.0], [0, 0, 1, 1])
    assert acc.compute() == pytest.approx(0.75)
    acc.update([-5.0, 20.0], [0, 1])
    assert acc.num_clipped == 2
    assert np.isnan(StreamingAUROC().compute())
    with pytest.raises(ValueError, match='score_range'):
        StreamingAUROC(score_range=(1, 1))
    with pytest.raises(ValueError, match='NaN'):
        acc.update([np.nan], [1])


def test_image_auroc():
    assert image_auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    with pytest.raises(ValueError, match=r'\(N,\)'):
        image_auroc(np.zeros((2, 2)), np.zeros((2, 2)))


# ------------------------------------------------ infinite and NaN scores
def _exact_auroc_by_pairs(scores, labels):
    """Mann-Whitney U by comparing every positive/negative pair (ties 1/2),
    independent of the sort-based implementation."""
    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(labels, bool).ravel()
    pos, neg = s[y], s[~y]
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return (gt + 0.5 * eq) / (pos.size * neg.size)


def test_infinite_scores_rank_highest_and_lowest_exact():
    inf = np.inf
    # +inf positives above every finite negative, -inf negatives below all
    scores = [inf, inf, 0.9, 0.2, 0.5, -inf, -inf, 0.95]
    labels = [1, 1, 1, 0, 0, 0, 0, 1]
    assert auroc_exact(scores, labels) == 1.0
    # tied infinite scores are one tie (1/2 per pair), never arbitrary
    scores = [inf, inf, inf, -inf, -inf, 0.3]
    labels = [1, 0, 1, 0, 1, 0]
    ref = _exact_auroc_by_pairs(scores, labels)
    for perm in ([0, 1, 2, 3, 4, 5], [1, 0, 2, 4, 3, 5], [5, 4, 3, 2, 1, 0]):
        s = np.asarray(scores)[perm]
        y = np.asarray(labels)[perm]
        assert auroc_exact(s, y) == pytest.approx(ref, abs=1e-12)
    # a +inf normal pixel is the first false positive of the PRO curve
    masks = np.zeros((1, 4, 4), bool)
    masks[0, :2, :2] = True
    s = np.where(masks, 0.9, 0.1)
    assert aupro_exact(s, masks) == 1.0
    s[0, 3, 3] = inf
    worse = aupro_exact(s, masks)
    assert worse < 1.0
    s[0, 3, 3] = 1e30  # a huge finite score ranks the same way
    assert aupro_exact(s, masks) == pytest.approx(worse, abs=1e-12)


def test_infinite_scores_streaming_perfect_ranking():
    # issue: an inf score used to land in the lowest bin (AUROC 0.0)
    acc = StreamingAUROC(num_bins=100)
    acc.update([np.inf, 0.9, 0.1, -np.inf], [1, 1, 0, 0])
    assert acc.compute() == 1.0
    assert acc.num_clipped == 0  # infinities are ranked, not clipped
    # infinite ties: same value as the pair-wise definition, any order
    scores = np.array([np.inf, np.inf, np.inf, -np.inf, -np.inf, 0.3])
    labels = np.array([1, 0, 1, 0, 1, 0])
    ref = _exact_auroc_by_pairs(scores, labels)
    for perm in ([0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]):
        acc = StreamingAUROC(num_bins=100)
        acc.update(scores[perm], labels[perm])
        assert acc.compute() == pytest.approx(ref, abs=1e-12)
    # +inf ranks above a finite score clipped into the top bin
    acc = StreamingAUROC(num_bins=10)
    acc.update([np.inf, 5.0], [1, 0])
    assert acc.compute() == 1.0 and acc.num_clipped == 1
    # pixel curves: streaming equals exact with infinities present
    scores, masks = random_maps(n=4, hw=16, seed=3)
    q = (np.floor(scores * 64) / 64).astype(np.float64)
    q[masks & (np.arange(16)[None, None, :] % 3 == 0)] = np.inf
    q[~masks & (np.arange(16)[None, :, None] % 5 == 0)] = -np.inf
    q[0, 0, 1] = np.inf  # one normal pixel at +inf
    curves = StreamingPixelCurves(num_bins=64)
    curves.update(q, masks)
    assert curves.compute() == pytest.approx(auroc_exact(q, masks),
                                             abs=1e-12)
    assert curves.aupro(0.3) == pytest.approx(aupro_exact(q, masks, 0.3),
                                              abs=1e-12)
    state = StreamingPixelCurves.from_state_dict(curves.state_dict())
    assert state.compute() == pytest.approx(curves.compute(), abs=1e-15)


def test_nan_scores_name_the_sample():
    maps = np.zeros((3, 4, 4), np.float32)
    masks = np.zeros((3, 4, 4), bool)
    masks[:, 0, 0] = True
    maps[2, 1, 3] = np.nan
    for fn in (lambda: auroc_exact(maps, masks),
               lambda: aupro_exact(maps, masks),
               lambda: pixel_auroc(maps, masks, num_bins=16),
               lambda: aupro(maps, masks, num_bins=16)):
        with pytest.raises(ValueError,
                           match=r'image 2, pixel y=1, x=3.*NaN'):
            fn()
    with pytest.raises(ValueError, match=r'scores\[1\] is NaN'):
        image_auroc([0.1, np.nan], [0, 1])
