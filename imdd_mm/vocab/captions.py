# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Structured captions from annotations (IMDD-1M §3.2, §11.1 template)::

    [Product] [Material] with [Defect Type] located at [Spatial Location],
    characterized by [Morphological Descriptors], potentially caused by
    [Root Cause].

rendered as e.g. ``"Magnetic tile made of sintered ferrite with crack
located at the upper-left corner, characterized by an isolated small
vertical elongated region, potentially caused by thermal stress during
cooling."``. Normal images get ``"... with no visible defects."``.

Region descriptors (:func:`describe_regions`) are computed from pixel masks
(8-connected components) or boxes:

* location - the area-weighted centroid on a 3x3 grid (``upper-left
  corner``, ``upper edge``, ``upper-right corner``, ``left side``,
  ``center``, ``right side``, ``lower-left corner``, ``lower edge``,
  ``lower-right corner``), or ``entire surface`` when the regions' joint
  box covers >= 80 % of the width and height;
* scale - the largest region's area / image area: < 0.1 % ``microscopic``,
  < 1 % ``small``, < 10 % ``medium``, else ``large``;
* orientation - the largest region's principal axis from its second
  moments (elongation sqrt(l1/l2) >= 1.5): within 22.5 deg of the x axis
  ``horizontal``, of the y axis ``vertical``, else ``diagonal``; None for
  compact regions. Boxes use their aspect ratio (never diagonal);
* shape - ``elongated`` (elongation >= 3), ``irregular`` (fills < 35 % of its
  box), ``oval`` (>= 1.5), else ``round`` (``compact`` for boxes);
* pattern - 1 region ``isolated``; >= 3 collinear centroids (minor/major
  centroid variance < 0.02) ``linear arrangement``; >= 4 elongated regions
  whose axes point at their common centre (mean |cos| >= 0.85) ``radial
  distribution``; otherwise mean nearest-neighbour distance < 10 % of the
  image diagonal ``clustered``, else ``scattered``.
"""
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = ['describe_regions', 'build_caption', 'caption_for_image',
           'GRID_NAMES', 'NORMAL_PHRASE']

GRID_NAMES = (('upper-left corner', 'upper edge', 'upper-right corner'),
              ('left side', 'center', 'right side'),
              ('lower-left corner', 'lower edge', 'lower-right corner'))
NORMAL_PHRASE = 'no visible defects'
_NUM_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven',
              'eight', 'nine', 'ten')

Region = Union[np.ndarray, Sequence[float]]


def _region_stats_from_mask(mask: np.ndarray) -> List[Dict[str, Any]]:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(mask.any(axis=0))
    oy, ox = int(rows[0]), int(cols[0])
    # components of the tight crop (1-px border keeps connectivity exact)
    m = np.zeros((int(rows[-1]) - oy + 3, int(cols[-1]) - ox + 3), np.uint8)
    m[1:-1, 1:-1] = mask[oy:rows[-1] + 1, ox:cols[-1] + 1]
    oy, ox = oy - 1, ox - 1
    n, labels, stats, cents = cv2.connectedComponentsWithStats(
        m, connectivity=8)
    comps = []
    total = int(stats[1:, cv2.CC_STAT_AREA].sum()) if n > 1 else 0
    min_area = max(1, int(0.005 * total))
    for k in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[k])
        if area < min_area:
            continue
        sub = (labels[y:y + h, x:x + w] == k).astype(np.uint8)
        mo = cv2.moments(sub, binaryImage=True)
        a = max(mo['m00'], 1.0)
        # second central moments (+1/12: a pixel's own extent)
        cov = (mo['mu20'] / a + 1 / 12.0, mo['mu11'] / a,
               mo['mu02'] / a + 1 / 12.0)
        comps.append({'area': float(area), 'cx': float(cents[k][0]) + ox,
                      'cy': float(cents[k][1]) + oy, 'cov': cov,
                      'box': (x + ox, y + oy, w, h),
                      'fill': area / float(w * h), 'is_box': False})
    return comps


def _region_stats_from_box(box: Sequence[float]) -> Dict[str, Any]:
    x, y, w, h = (float(v) for v in box)
    return {'area': w * h, 'cx': x + w / 2, 'cy': y + h / 2,
            'cov': (w * w / 12.0, 0.0, h * h / 12.0), 'box': (x, y, w, h),
            'fill': 1.0, 'is_box': True}


def _eig2(cov: Tuple[float, float, float]) -> Tuple[float, float, float]:
    """Eigen-analysis of the symmetric 2x2 ``[[a, b], [b, c]]``:
    (major eigenvalue, minor eigenvalue, major-axis angle in degrees in
    [0, 180), measured from +x towards +y, i.e. image rows downwards)."""
    a, b, c = cov
    half_tr = (a + c) / 2.0
    disc = math.sqrt(max(0.0, ((a - c) / 2.0)**2 + b * b))
    ang = math.degrees(0.5 * math.atan2(2.0 * b, a - c)) % 180.0
    return half_tr + disc, half_tr - disc, ang


def _axis(cov: Tuple[float, float, float]) -> Tuple[float, float]:
    """(elongation sqrt(l1/l2), angle in degrees of the major axis)."""
    l1, l2, ang = _eig2(cov)
    return math.sqrt(max(l1, 1e-12) / max(l2, 1e-12)), ang


def _orientation(elong: float, ang: float, is_box: bool,
                 cov: Tuple[float, float, float]) -> Optional[str]:
    if elong < 1.5:
        return None
    if is_box:
        return 'horizontal' if cov[0] > cov[2] else 'vertical'
    if ang < 22.5 or ang >= 157.5:
        return 'horizontal'
    if 67.5 <= ang < 112.5:
        return 'vertical'
    return 'diagonal'


def _scale(frac: float) -> str:
    if frac < 0.001:
        return 'microscopic'
    if frac < 0.01:
        return 'small'
    if frac < 0.1:
        return 'medium'
    return 'large'


def _mean_nn_distance(pts: List[Tuple[float, float]]) -> float:
    if len(pts) > 64:  # vectorised for many regions
        p = np.asarray(pts)
        d = np.sqrt(((p[:, None, :] - p[None, :, :])**2).sum(-1))
        np.fill_diagonal(d, np.inf)
        return float(d.min(axis=1).mean())
    tot = 0.0
    for i, (xi, yi) in enumerate(pts):
        tot += min(math.hypot(xi - xj, yi - yj)
                   for j, (xj, yj) in enumerate(pts) if j != i)
    return tot / len(pts)


def _pattern(comps: List[Dict[str, Any]], diag: float) -> str:
    n = len(comps)
    if n <= 1:
        return 'isolated'
    pts = [(c['cx'], c['cy']) for c in comps]
    mx = sum(p[0] for p in pts) / n
    my = sum(p[1] for p in pts) / n
    if n >= 3:
        sxx = sum((p[0] - mx)**2 for p in pts) / n
        syy = sum((p[1] - my)**2 for p in pts) / n
        sxy = sum((p[0] - mx) * (p[1] - my) for p in pts) / n
        l1, l2, _ = _eig2((sxx, sxy, syy))
        if l1 > 1e-9 and l2 / l1 < 0.02 and math.sqrt(l1) > 0.05 * diag:
            return 'linear arrangement'
    if n >= 4:
        cosines = []
        for c in comps:
            elong, ang = _axis(c['cov'])
            rx, ry = c['cx'] - mx, c['cy'] - my
            rn = math.hypot(rx, ry)
            if elong < 2.0 or rn < 1e-6:
                cosines = []
                break
            t = math.radians(ang)
            cosines.append(abs(math.cos(t) * rx / rn + math.sin(t) * ry / rn))
        if cosines and sum(cosines) / len(cosines) >= 0.85:
            return 'radial distribution'
    nn = _mean_nn_distance(pts)
    return 'clustered' if nn < 0.1 * diag else 'scattered'


def describe_regions(regions: Union[Region, Sequence[Region]],
                     image_size: Tuple[int, int]) -> Dict[str, Any]:
    """Spatial/morphological descriptors of defect regions.

    Args:
        regions: A boolean mask (H, W), a box ``(x, y, w, h)``, or a list of
            them (masks are split into 8-connected components; each box is
            one region).
        image_size: ``(width, height)``.

    Returns:
        dict: ``num_regions``, ``location`` (grid name or ``'entire
        surface'``), ``scale``, ``orientation`` (str or None), ``shape``,
        ``pattern``, ``area_fraction`` (union / image; boxes: summed,
        capped at 1), ``centroid`` ``(x, y)`` normalised to [0, 1],
        ``elongation`` and ``angle`` (deg) of the largest region. With no
        (non-empty) region: ``num_regions == 0`` and None descriptors.
    """
    W, H = int(image_size[0]), int(image_size[1])
    if isinstance(regions, np.ndarray) and regions.ndim == 2:
        regions = [regions]
    elif len(regions) == 4 and isinstance(regions[0], (int, float,
                                                          np.number)):
        regions = [regions]  # a single box
    comps: List[Dict[str, Any]] = []
    union_area = 0.0
    mask_union = None
    for r in regions:
        if isinstance(r, np.ndarray) and r.ndim == 2:
            if r.shape != (H, W):
                raise ValueError(f'mask shape {r.shape} != image (H, W) '
                                 f'{(H, W)}')
            r = np.asarray(r, dtype=bool)
            mask_union = r if mask_union is None else (mask_union | r)
        else:
            comps.append(_region_stats_from_box(r))
            union_area += comps[-1]['area']
    if mask_union is not None:
        comps.extend(_region_stats_from_mask(mask_union))
        union_area += float(mask_union.sum())
    comps.sort(key=lambda c: (-c['area'], c['cy'], c['cx']))
    img_area = float(W * H)
    if not comps:
        return {'num_regions': 0, 'location': None, 'scale': None,
                'orientation': None, 'shape': None, 'pattern': None,
                'area_fraction': 0.0, 'centroid': None, 'elongation': None,
                'angle': None}
    tot = sum(c['area'] for c in comps)
    cx = sum(c['area'] * c['cx'] for c in comps) / tot
    cy = sum(c['area'] * c['cy'] for c in comps) / tot
    x0 = min(c['box'][0] for c in comps)
    y0 = min(c['box'][1] for c in comps)
    x1 = max(c['box'][0] + c['box'][2] for c in comps)
    y1 = max(c['box'][1] + c['box'][3] for c in comps)
    if (x1 - x0) >= 0.8 * W and (y1 - y0) >= 0.8 * H:
        location = 'entire surface'
    else:
        col = min(2, max(0, int(3 * cx / W)))
        row = min(2, max(0, int(3 * cy / H)))
        location = GRID_NAMES[row][col]
    big = comps[0]
    elong, ang = _axis(big['cov'])
    orientation = _orientation(elong, ang, big['is_box'], big['cov'])
    if elong >= 3.0:
        shape = 'elongated'
    elif big['fill'] < 0.35:
        shape = 'irregular'
    elif elong >= 1.5:
        shape = 'oval'
    else:
        shape = 'compact' if big['is_box'] else 'round'
    return {
        'num_regions': len(comps),
        'location': location,
        'scale': _scale(big['area'] / img_area),
        'orientation': orientation,
        'shape': shape,
        'pattern': _pattern(comps, math.hypot(W, H)),
        'area_fraction': min(1.0, union_area / img_area),
        'centroid': (cx / W, cy / H),
        'elongation': elong,
        'angle': ang,
    }


def morphology_phrase(desc: Dict[str, Any]) -> Optional[str]:
    """``describe_regions`` output -> morphological descriptor phrase."""
    n = desc.get('num_regions') or 0
    if n == 0:
        return None
    words = ' '.join(w for w in (desc['scale'], desc['orientation'],
                                 desc['shape']) if w)
    if n == 1:
        return f'an isolated {words} region'
    count = _NUM_WORDS[n] if n < len(_NUM_WORDS) else 'multiple'
    pattern = desc['pattern']
    if pattern in ('scattered', 'clustered'):
        tail = f'in a {pattern} pattern'
    else:
        tail = f'in a {pattern}'
    return f'{count} {words} regions {tail}'


def _location_phrase(loc: Optional[str]) -> Optional[str]:
    if not loc:
        return None
    if loc == 'entire surface':
        return 'across the entire surface'
    return f'at the {loc}'


def _subject(product: Optional[str], material: Optional[str]) -> str:
    product = product or 'industrial product'
    if material and material not in ('unspecified material', ):
        return f'{product} made of {material}'
    return product


def build_caption(product: Optional[str],
                  material: Optional[str],
                  defect_type: Optional[str] = None,
                  location: Optional[str] = None,
                  morphology: Optional[Union[str, Sequence[str]]] = None,
                  root_cause: Optional[str] = None,
                  is_normal: bool = False) -> str:
    """One caption sentence in the paper's template.

    Args:
        product, material: Taxonomy names (e.g. ``'magnetic tile'``,
            ``'sintered ferrite'``).
        defect_type: Defect type name; None (or ``is_normal``) gives the
            normal caption.
        location: Grid name from :func:`describe_regions` (or any phrase);
            rendered as ``'located at the <location>'``.
        morphology: Descriptor phrase or list of descriptors (joined with
            commas).
        root_cause: Root-cause phrase.
        is_normal: Defect-free image.

    Returns:
        str: e.g. ``'Steel strip made of hot-rolled steel with scratch
        located at the center, characterized by ..., potentially caused by
        ....'``
    """
    subject = _subject(product, material)
    if is_normal or not defect_type:
        text = f'{subject} with {NORMAL_PHRASE}, showing a uniform ' \
               'defect-free surface.'
        return text[0].upper() + text[1:]
    parts = [f'{subject} with {defect_type}']
    loc = _location_phrase(location) if location and not location.startswith(
        ('at ', 'across ')) else location
    if loc:
        parts[0] += f' located {loc}'
    if morphology:
        if not isinstance(morphology, str):
            morphology = ', '.join(m for m in morphology if m)
        if morphology:
            parts.append(f'characterized by {morphology}')
    if root_cause:
        parts.append(f'potentially caused by {root_cause}')
    text = ', '.join(parts) + '.'
    return text[0].upper() + text[1:]


def caption_for_image(product: Optional[str],
                      material: Optional[str],
                      defects: Sequence[Tuple[Dict[str, Any],
                                              Sequence[Region]]],
                      image_size: Tuple[int, int],
                      is_normal: bool = False,
                      severity: Optional[str] = None) -> str:
    """Caption of one image from its annotations.

    Args:
        product, material: Subject of the caption.
        defects: ``(taxonomy entry, regions)`` per defect type in the image
            (entries from :func:`imdd_mm.vocab.map_category`; regions are
            masks or boxes, possibly empty for image-level labels).
        image_size: ``(width, height)``.
        is_normal: Defect-free image (``defects`` must then be empty).
        severity: Optional image-level severity (``'low'``/``'medium'``/
            ``'high'``), used when there are no regions.

    Returns:
        str: one template sentence for the first defect type, then one
        ``"Additional <defect> ..."`` sentence per further type.
    """
    if is_normal or not defects:
        return build_caption(product, material, is_normal=True)
    sentences = []
    for k, (meta, regions) in enumerate(defects):
        desc = describe_regions(list(regions), image_size) if regions \
            else {'num_regions': 0}
        morph = morphology_phrase(desc)
        if morph is None and severity:
            morph = f'a {severity}-severity appearance'
        causes = meta.get('root_causes') or []
        dt = meta.get('defect_type') or meta.get('name') or 'generic defect'
        s = build_caption(product, material, dt, desc.get('location'), morph,
                          causes[0] if causes else None)
        if k > 0:
            s = 'Additional ' + s.split(' with ', 1)[1]
        sentences.append(s)
    return ' '.join(sentences)
