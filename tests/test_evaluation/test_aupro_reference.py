# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""AUPRO against an independent implementation of the MVTec AD reference
definition (Bergmann et al., MVTec AD evaluation code):

- regions are the 8-connected components of each ground-truth mask
  (labelled here by a flood fill written for this test);
- at every threshold ``t`` (each distinct score), a pixel is predicted
  anomalous when ``score >= t``; the per-region overlap (PRO) is the mean,
  over all regions of all images, of the fraction of the region predicted;
  the FPR is the fraction of all defect-free pixels predicted;
- the curve starts at (0, 0), is integrated with the trapezoidal rule up to
  FPR 0.3 (linearly interpolated at 0.3) and divided by 0.3.

Brute force over thresholds, no cumulative sums, no shared code with
``imdd_mm.evaluation.functional.ranking``.
"""
from collections import deque

import numpy as np
import pytest

from imdd_mm.evaluation.functional.ranking import aupro


def flood_regions(mask: np.ndarray) -> list:
    """8-connected regions of a bool mask as lists of (y, x)."""
    h, w = mask.shape
    seen = np.zeros_like(mask, bool)
    regions = []
    for y0 in range(h):
        for x0 in range(w):
            if not mask[y0, x0] or seen[y0, x0]:
                continue
            queue, region = deque([(y0, x0)]), []
            seen[y0, x0] = True
            while queue:
                y, x = queue.popleft()
                region.append((y, x))
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] \
                                and not seen[yy, xx]:
                            seen[yy, xx] = True
                            queue.append((yy, xx))
            regions.append(region)
    return regions


def reference_aupro(scores: np.ndarray, masks: np.ndarray,
                    limit: float = 0.3) -> float:
    regions = [(i, r) for i, m in enumerate(masks) for r in flood_regions(m)]
    normal = ~masks
    points = [(0.0, 0.0)]
    for t in sorted(np.unique(scores), reverse=True):
        pred = scores >= t
        fpr = (pred & normal).sum() / normal.sum()
        pro = np.mean([np.mean([pred[i, y, x] for y, x in r])
                       for i, r in regions])
        points.append((float(fpr), float(pro)))
    fpr, pro = map(np.array, zip(*points))
    keep = fpr <= limit
    x, y = list(fpr[keep]), list(pro[keep])
    if x[-1] < limit:
        j = int(np.argmax(fpr > limit))
        x.append(limit)
        y.append(pro[j - 1] + (pro[j] - pro[j - 1]) * (limit - fpr[j - 1]) /
                 (fpr[j] - fpr[j - 1]))
    return float(np.trapezoid(y, x) / limit)


@pytest.fixture
def fixture_maps():
    """Three 16x16 images: two corner-touching squares (one 8-connected
    region) plus a separate line; one small blob; one defect-free image.
    Scores are quantised to steps of 1/20 (ties)."""
    masks = np.zeros((3, 16, 16), bool)
    masks[0, 2:5, 2:5] = True
    masks[0, 5:7, 5:7] = True  # touches (4, 4) diagonally: same region
    masks[0, 10, 3:12] = True
    masks[1, 8:10, 8:11] = True
    rng = np.random.default_rng(7)
    scores = rng.random(masks.shape) * 0.7 + masks * rng.random(
        masks.shape) * 0.5
    scores = np.round(np.clip(scores, 0, 1) * 20) / 20
    return scores, masks


def test_reference_sees_eight_connectivity(fixture_maps):
    _, masks = fixture_maps
    assert len(flood_regions(masks[0])) == 2
    assert len(flood_regions(masks[1])) == 1


@pytest.mark.parametrize('limit', [0.3, 0.05, 1.0])
def test_aupro_matches_mvtec_reference(fixture_maps, limit):
    scores, masks = fixture_maps
    expected = reference_aupro(scores, masks, limit)
    assert 0.0 < expected < 1.0
    assert aupro(scores, masks, limit) == pytest.approx(expected, abs=1e-9)
    # streaming: every distinct score (k / 20) falls in its own bin
    assert aupro(scores, masks, limit, num_bins=1000) == pytest.approx(
        expected, abs=1e-9)


def test_aupro_region_average_not_pixel_average(fixture_maps):
    """Detecting only the large region gives PRO 1/3 (3 regions), not its
    pixel share, at FPR 0; the curve then rises linearly to (1, 1), so the
    normalised area up to 0.3 is 1/3 + 0.3 * (2/3) / 2."""
    _, masks = fixture_maps
    scores = np.zeros(masks.shape)
    region = masks[0].copy()
    region[10] = False
    scores[0][region] = 1.0
    expected = 1 / 3 + 0.1
    assert reference_aupro(scores, masks, 0.3) == pytest.approx(expected)
    assert aupro(scores, masks, 0.3) == pytest.approx(expected)
