# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Ranking metrics for anomaly localisation: AUROC and AUPRO.

Two families of implementations live here:

* **Exact, sort-based references** (:func:`auroc_exact`,
  :func:`aupro_exact`): every distinct score is a threshold. They need all
  scores in memory at once (``O(#pixels)``) and a global sort.
* **Streaming accumulators** (:class:`StreamingAUROC`,
  :class:`StreamingPixelCurves`): scores are quantised into ``num_bins``
  fixed bins over a known ``score_range`` (default ``[0, 1]``, the range of
  ``pred_score_map``). The state is a few histograms whose size depends only
  on ``num_bins``, never on the number of images, and states of different
  processes merge by addition. The result equals the exact computation on
  the quantised scores; against the unquantised exact value the AUROC error
  is bounded by half the fraction of positive/negative pairs that share a
  bin (:meth:`StreamingAUROC.max_error` reports that bound).

Definitions (MVTec AD protocol):

* AUROC: area under the ROC curve, ties counted one half (Mann-Whitney U).
  Pixel AUROC pools all pixels of all images; label 1 = defect pixel.
* PRO: for a threshold ``t``, the per-region overlap is the mean, over all
  ground-truth regions of all images, of the fraction of the region's pixels
  with score ``>= t``. Regions are the 8-connected components of each
  ground-truth mask. The false positive rate is the fraction of all normal
  (mask = 0) pixels with score ``>= t``. AUPRO is the area under the
  PRO-vs-FPR curve for ``FPR in [0, fpr_limit]`` (trapezoidal, the curve
  linearly interpolated at ``fpr_limit``) divided by ``fpr_limit``, so a
  perfect detector scores 1.

Reference: Bergmann et al., "The MVTec Anomaly Detection Dataset", IJCV
2021 (the PRO curve); Mann & Whitney 1947 (AUROC with ties).
"""
from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = [
    'auroc_exact', 'aupro_exact', 'pixel_auroc', 'image_auroc', 'aupro',
    'label_regions', 'partial_curve_area', 'StreamingAUROC',
    'StreamingPixelCurves'
]


# ---------------------------------------------------------------- helpers
def _as_scores(scores, name: str = 'scores') -> np.ndarray:
    """Float array of ``scores``; ``+inf`` / ``-inf`` are kept (they rank
    highest / lowest), NaN is an error naming the first NaN's position
    (``scores[i, ...]`` = image ``i`` of a stack of maps)."""
    arr = np.asarray(scores)
    if arr.dtype.kind not in 'fiub':
        raise TypeError(f'{name} must be numeric, got dtype {arr.dtype}')
    if arr.dtype.kind != 'f':
        arr = arr.astype(np.float64)
    nan = np.isnan(arr)
    if nan.any():
        first = tuple(int(i) for i in np.argwhere(nan)[0])
        where = f'{name}[{", ".join(map(str, first))}]'
        if arr.ndim == 3:
            where += f' (image {first[0]}, pixel y={first[1]}, x={first[2]})'
        raise ValueError(f'{where} is NaN ({int(nan.sum())} NaN values in '
                         f'{name}); a score must be a number (+inf / -inf '
                         'are allowed)')
    return arr


def _run_ends(s_sorted: np.ndarray) -> np.ndarray:
    """Indices where a run of equal values ends in a sorted array (last
    index of each run). Compared with ``!=``, not ``diff``: ``inf - inf``
    is NaN, which would split tied infinite scores."""
    return np.flatnonzero(s_sorted[1:] != s_sorted[:-1])


def _check_maps(scores, masks) -> Tuple[np.ndarray, np.ndarray]:
    scores = _as_scores(scores)
    masks = np.asarray(masks)
    if scores.ndim == 2:
        scores = scores[None]
    if masks.ndim == 2:
        masks = masks[None]
    if scores.ndim != 3 or scores.shape != masks.shape:
        raise ValueError('scores and masks must both have shape (N, H, W); '
                         f'got {scores.shape} and {masks.shape}')
    return scores, masks.astype(bool, copy=False)


def label_regions(mask: np.ndarray) -> Tuple[np.ndarray, int]:
    """8-connected components of one binary mask.

    Args:
        mask (np.ndarray): (H, W) bool / {0, 1}.

    Returns:
        tuple: ``labels`` (H, W) int32 with 0 = background and
        ``1..num`` the regions, and ``num`` (int).
    """
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    if mask.ndim != 2:
        raise ValueError(f'mask must be 2-D (H, W), got {mask.shape}')
    if not mask.any():
        return np.zeros(mask.shape, np.int32), 0
    try:
        import cv2
        num, labels = cv2.connectedComponents(mask, connectivity=8,
                                              ltype=cv2.CV_32S)
        return labels, int(num) - 1
    except ImportError:  # pragma: no cover - opencv is a dependency
        from scipy import ndimage
        labels, num = ndimage.label(mask, structure=np.ones((3, 3), int))
        return labels.astype(np.int32), int(num)


def partial_curve_area(fpr: np.ndarray, tpr: np.ndarray,
                       limit: float) -> float:
    """Trapezoidal area under ``tpr(fpr)`` on ``[0, limit]``, divided by
    ``limit``.

    Args:
        fpr (np.ndarray): (K,) non-decreasing, starting at 0.
        tpr (np.ndarray): (K,) curve values (PRO or TPR).
        limit (float): upper integration bound in (0, 1].

    Returns:
        float: normalised area; the curve is linearly interpolated at
        ``limit`` when no point falls exactly on it.
    """
    if not 0 < limit <= 1:
        raise ValueError(f'fpr_limit must be in (0, 1], got {limit}')
    fpr = np.asarray(fpr, np.float64)
    tpr = np.asarray(tpr, np.float64)
    i = int(np.searchsorted(fpr, limit, side='right'))
    x, y = fpr[:i], tpr[:i]
    if i < len(fpr) and fpr[i - 1] < limit:
        x0, x1, y0, y1 = fpr[i - 1], fpr[i], tpr[i - 1], tpr[i]
        y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        x = np.append(x, limit)
        y = np.append(y, y_lim)
    area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) * 0.5))
    return area / limit


# ----------------------------------------------------------------- exact
def auroc_exact(scores, labels) -> float:
    """Exact AUROC by one sort (Mann-Whitney U with mid-ranks for ties).

    Args:
        scores (array-like): any shape, higher = more likely positive.
        labels (array-like): same shape, truthy = positive.

    Returns:
        float: AUROC in [0, 1]; NaN when one class is absent.
    """
    s = _as_scores(scores).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f'scores {s.shape} and labels {y.shape} differ')
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float('nan')
    order = np.argsort(s)
    s_sorted = s[order]
    y_sorted = y[order]
    starts = np.concatenate(([0], _run_ends(s_sorted) + 1))
    ends = np.append(starts[1:], s.size)
    mid_rank = (starts + ends + 1) * 0.5  # 1-based mean rank of each run
    pos_per_run = np.add.reduceat(y_sorted.astype(np.int64), starts)
    rank_sum = float(np.dot(pos_per_run.astype(np.float64), mid_rank))
    u = rank_sum - n_pos * (n_pos + 1) / 2.0
    return u / (float(n_pos) * float(n_neg))


def _pro_weights(masks: np.ndarray) -> Tuple[np.ndarray, int]:
    """Per-pixel PRO weight ``1 / region_size`` (0 for normal pixels)."""
    weights = np.zeros(masks.shape, np.float64)
    num_regions = 0
    for i, mask in enumerate(masks):
        labels, num = label_regions(mask)
        if num == 0:
            continue
        sizes = np.bincount(labels.ravel(), minlength=num + 1)
        inv = np.zeros(num + 1, np.float64)
        inv[1:] = 1.0 / sizes[1:]
        weights[i] = inv[labels]
        num_regions += num
    return weights, num_regions


def aupro_exact(scores, masks, fpr_limit: float = 0.3) -> float:
    """Exact AUPRO: every distinct score is a threshold (one global sort).

    Args:
        scores (array-like): (N, H, W) anomaly scores.
        masks (array-like): (N, H, W) ground-truth defect masks.
        fpr_limit (float): integrate PRO over FPR in ``[0, fpr_limit]``.

    Returns:
        float: normalised AUPRO in [0, 1]; NaN without regions or without
        normal pixels.
    """
    scores, masks = _check_maps(scores, masks)
    weights, num_regions = _pro_weights(masks)
    neg = ~masks
    n_neg = int(neg.sum())
    if num_regions == 0 or n_neg == 0:
        return float('nan')
    s = scores.ravel()
    order = np.argsort(-s, kind='stable')
    s_sorted = s[order]
    fp_cum = np.cumsum(neg.ravel()[order], dtype=np.int64)
    pro_cum = np.cumsum(weights.ravel()[order])
    last = np.append(_run_ends(s_sorted), s.size - 1)
    fpr = np.concatenate(([0.0], fp_cum[last] / n_neg))
    pro = np.concatenate(([0.0], pro_cum[last] / num_regions))
    return partial_curve_area(fpr, pro, fpr_limit)


# ------------------------------------------------------------- streaming
class StreamingAUROC:
    """Binned, mergeable AUROC accumulator with state independent of the
    number of samples.

    Args:
        num_bins (int): number of equal-width score bins. Scores closer
            than ``(hi - lo) / num_bins`` are treated as ties.
        score_range (tuple[float, float]): ``(lo, hi)``; scores outside are
            clipped into the first/last bin and counted in
            :attr:`num_clipped` (results are then only approximate).
    """

    def __init__(self,
                 num_bins: int = 2**18,
                 score_range: Tuple[float, float] = (0.0, 1.0)) -> None:
        lo, hi = float(score_range[0]), float(score_range[1])
        if not hi > lo:
            raise ValueError(f'score_range must be (lo, hi) with hi > lo, '
                             f'got {score_range}')
        if int(num_bins) < 2:
            raise ValueError(f'num_bins must be >= 2, got {num_bins}')
        self.num_bins = int(num_bins)
        self.score_range = (lo, hi)
        self.reset()

    @property
    def num_slots(self) -> int:
        """Histogram length: slot 0 holds ``-inf``, slots ``1..num_bins``
        the finite scores, slot ``num_bins + 1`` holds ``+inf``, so an
        infinite score ranks strictly below / above every finite one and
        ties only with scores of the same sign of infinity."""
        return self.num_bins + 2

    def reset(self) -> None:
        self.pos_hist = np.zeros(self.num_slots, np.int64)
        self.neg_hist = np.zeros(self.num_slots, np.int64)
        self.num_clipped = 0

    # quantisation shared with the subclasses
    def _quantise(self, scores: np.ndarray) -> np.ndarray:
        """Slot index of every score (see :attr:`num_slots`); finite scores
        outside ``score_range`` go to the first / last finite bin and are
        counted in :attr:`num_clipped`."""
        lo, hi = self.score_range
        s = _as_scores(scores).ravel()
        finite = np.isfinite(s)
        out_of_range = int(np.count_nonzero(finite & ((s < lo) | (s > hi))))
        self.num_clipped += out_of_range
        clipped = np.clip(np.where(finite, s, lo), lo, hi)
        idx = ((clipped - lo) * (self.num_bins / (hi - lo))).astype(np.int64)
        np.clip(idx, 0, self.num_bins - 1, out=idx)
        idx += 1
        idx[s == np.inf] = self.num_bins + 1
        idx[s == -np.inf] = 0
        return idx

    def update(self, scores, labels) -> None:
        """Add samples.

        Args:
            scores (array-like): any shape.
            labels (array-like): same shape, truthy = positive.
        """
        idx = self._quantise(scores)
        y = np.asarray(labels).astype(bool).ravel()
        if idx.shape != y.shape:
            raise ValueError(f'scores ({idx.size} values) and labels '
                             f'({y.size} values) differ in size')
        hist = np.bincount(idx * 2 + y, minlength=2 * self.num_slots)
        self.neg_hist += hist[0::2]
        self.pos_hist += hist[1::2]

    def _check_compatible(self, other: 'StreamingAUROC') -> None:
        if (type(other) is not type(self) or other.num_bins != self.num_bins
                or other.score_range != self.score_range):
            raise ValueError('can only merge accumulators of the same type, '
                             'num_bins and score_range')

    def merge(self, other: 'StreamingAUROC') -> 'StreamingAUROC':
        """Add another accumulator's state (e.g. from another rank)."""
        self._check_compatible(other)
        self.pos_hist += other.pos_hist
        self.neg_hist += other.neg_hist
        self.num_clipped += other.num_clipped
        return self

    def compute(self) -> float:
        """AUROC of the quantised scores; NaN if one class is absent."""
        n_pos = float(self.pos_hist.sum())
        n_neg = float(self.neg_hist.sum())
        if n_pos == 0 or n_neg == 0:
            return float('nan')
        neg = self.neg_hist.astype(np.float64)
        neg_below = np.cumsum(neg) - neg
        u = float(np.dot(self.pos_hist.astype(np.float64),
                         neg_below + 0.5 * neg))
        return u / (n_pos * n_neg)

    def max_error(self) -> float:
        """Upper bound of ``|compute() - exact|`` caused by binning (pairs
        sharing a finite bin count one half instead of 0 or 1; pairs of
        equal infinite scores are true ties, counted one half exactly)."""
        n_pos = float(self.pos_hist.sum())
        n_neg = float(self.neg_hist.sum())
        if n_pos == 0 or n_neg == 0:
            return float('nan')
        shared = float(np.dot(self.pos_hist[1:-1].astype(np.float64),
                              self.neg_hist[1:-1].astype(np.float64)))
        return 0.5 * shared / (n_pos * n_neg)


class StreamingPixelCurves(StreamingAUROC):
    """Streaming pixel AUROC **and** AUPRO over score maps.

    State: positive/negative pixel histograms (int64, ``num_bins`` each),
    a float64 histogram of per-region overlap weights (each defect pixel
    adds ``1 / size_of_its_region``) and the region count. Updates are
    buffered (at most ``buffer_pixels`` pixels) so that the histogramming
    runs on large chunks.

    Args:
        num_bins (int): see :class:`StreamingAUROC`.
        score_range (tuple[float, float]): see :class:`StreamingAUROC`.
        buffer_pixels (int): flush the buffer once it holds this many
            pixels; bounds the extra memory.
    """

    def __init__(self,
                 num_bins: int = 2**18,
                 score_range: Tuple[float, float] = (0.0, 1.0),
                 buffer_pixels: int = 2**20) -> None:
        self.buffer_pixels = int(buffer_pixels)
        super().__init__(num_bins=num_bins, score_range=score_range)

    def reset(self) -> None:
        super().reset()
        self.pro_hist = np.zeros(self.num_slots, np.float64)
        self.num_regions = 0
        self._keys: list = []  # idx * 2 + is_defect chunks
        self._pro_idx: list = []
        self._pro_w: list = []
        self._buffered = 0

    def update(self, scores, masks) -> None:  # type: ignore[override]
        """Add score maps.

        Args:
            scores (array-like): (H, W) or (N, H, W) scores.
            masks (array-like): same shape, ground-truth defect masks.
        """
        scores, masks = _check_maps(scores, masks)
        for score, mask in zip(scores, masks):
            idx = self._quantise(score)
            flat = mask.ravel()
            key = idx.astype(np.int32 if self.num_slots < 2**30 else np.int64)
            key *= 2
            key += flat
            self._keys.append(key)
            labels, num = label_regions(mask)
            if num:
                lab = labels.ravel()
                sel = lab > 0
                sizes = np.bincount(lab, minlength=num + 1)
                inv = np.zeros(num + 1, np.float64)
                inv[1:] = 1.0 / sizes[1:]
                self._pro_idx.append(idx[sel])
                self._pro_w.append(inv[lab[sel]])
                self.num_regions += num
            self._buffered += idx.size
            if self._buffered >= self.buffer_pixels:
                self._flush()

    def _flush(self) -> None:
        if self._keys:
            keys = np.concatenate(self._keys)
            hist = np.bincount(keys, minlength=2 * self.num_slots)
            self.neg_hist += hist[0::2]
            self.pos_hist += hist[1::2]
        if self._pro_idx:
            self.pro_hist += np.bincount(
                np.concatenate(self._pro_idx),
                weights=np.concatenate(self._pro_w),
                minlength=self.num_slots)
        self._keys, self._pro_idx, self._pro_w = [], [], []
        self._buffered = 0

    def merge(self, other: 'StreamingPixelCurves') -> 'StreamingPixelCurves':
        self._flush()
        other._flush()
        super().merge(other)
        self.pro_hist += other.pro_hist
        self.num_regions += other.num_regions
        return self

    def state_dict(self) -> dict:
        """Compact state (numpy arrays) for gathering across processes."""
        self._flush()
        return dict(
            num_bins=self.num_bins,
            score_range=self.score_range,
            pos_hist=self.pos_hist,
            neg_hist=self.neg_hist,
            pro_hist=self.pro_hist,
            num_regions=self.num_regions,
            num_clipped=self.num_clipped)

    @classmethod
    def from_state_dict(cls, state: dict) -> 'StreamingPixelCurves':
        obj = cls(num_bins=state['num_bins'],
                  score_range=tuple(state['score_range']))
        obj.pos_hist = np.asarray(state['pos_hist'], np.int64).copy()
        obj.neg_hist = np.asarray(state['neg_hist'], np.int64).copy()
        obj.pro_hist = np.asarray(state['pro_hist'], np.float64).copy()
        obj.num_regions = int(state['num_regions'])
        obj.num_clipped = int(state['num_clipped'])
        return obj

    def compute(self) -> float:
        """Pixel AUROC."""
        self._flush()
        return super().compute()

    def max_error(self) -> float:
        self._flush()
        return super().max_error()

    def pro_curve(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(fpr, pro)`` at every bin edge, from the highest threshold down,
        starting at ``(0, 0)``."""
        self._flush()
        n_neg = self.neg_hist.sum()
        fp = np.cumsum(self.neg_hist[::-1])
        pro = np.cumsum(self.pro_hist[::-1])
        fpr = np.concatenate(([0.0], fp / max(n_neg, 1)))
        pro = np.concatenate(([0.0], pro / max(self.num_regions, 1)))
        return fpr, pro

    def aupro(self, fpr_limit: float = 0.3) -> float:
        """AUPRO of the quantised scores; NaN without regions or without
        normal pixels."""
        self._flush()
        if self.num_regions == 0 or self.neg_hist.sum() == 0:
            return float('nan')
        fpr, pro = self.pro_curve()
        return partial_curve_area(fpr, pro, fpr_limit)


# ------------------------------------------------------- functional forms
def pixel_auroc(scores, masks, num_bins: Optional[int] = None,
                score_range: Tuple[float, float] = (0.0, 1.0)) -> float:
    """Pixel-level AUROC over all pixels of all images.

    Args:
        scores (array-like): (N, H, W) anomaly scores.
        masks (array-like): (N, H, W) ground-truth defect masks.
        num_bins (int, optional): ``None`` (default) computes the exact,
            sort-based value; an int uses the streaming, binned accumulator.
        score_range (tuple): score range of the binned accumulator.

    Returns:
        float: AUROC in [0, 1] (NaN if all pixels share one label).
    """
    scores, masks = _check_maps(scores, masks)
    if num_bins is None:
        return auroc_exact(scores, masks)
    acc = StreamingAUROC(num_bins, score_range)
    acc.update(scores, masks)
    return acc.compute()


def aupro(scores, masks, fpr_limit: float = 0.3,
          num_bins: Optional[int] = None,
          score_range: Tuple[float, float] = (0.0, 1.0)) -> float:
    """Area under the per-region-overlap curve up to ``fpr_limit``, divided
    by ``fpr_limit`` (MVTec AD definition; regions are the 8-connected
    components of each ground-truth mask).

    Args:
        scores (array-like): (N, H, W) anomaly scores.
        masks (array-like): (N, H, W) ground-truth defect masks.
        fpr_limit (float): integration limit on the false positive rate.
        num_bins (int, optional): ``None`` = exact; int = streaming/binned.
        score_range (tuple): score range of the binned accumulator.

    Returns:
        float: AUPRO in [0, 1] (NaN without defect regions or normal pixels).
    """
    if num_bins is None:
        return aupro_exact(scores, masks, fpr_limit)
    acc = StreamingPixelCurves(num_bins, score_range)
    acc.update(scores, masks)
    return acc.aupro(fpr_limit)


def image_auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Image-level AUROC (exact).

    Args:
        scores (array-like): (N,) image anomaly scores.
        labels (array-like): (N,) 1 / True = defective image, 0 = normal.

    Returns:
        float: AUROC (NaN if only one kind of image is present).
    """
    scores = _as_scores(scores)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError('scores and labels must both have shape (N,); got '
                         f'{scores.shape} and {labels.shape}')
    return auroc_exact(scores, labels)
