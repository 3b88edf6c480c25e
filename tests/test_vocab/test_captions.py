# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import numpy as np
import pytest

from imdd_mm.vocab import (GRID_NAMES, build_caption, caption_for_image,
                           describe_regions, extract_nouns, map_category)

W, H = 300, 240


def blank():
    return np.zeros((H, W), bool)


def disk(m, cx, cy, r):
    yy, xx = np.mgrid[:H, :W]
    m[(xx - cx)**2 + (yy - cy)**2 <= r * r] = True
    return m


@pytest.mark.parametrize('row', range(3))
@pytest.mark.parametrize('col', range(3))
def test_location_on_3x3_grid(row, col):
    m = disk(blank(), W * (col + 0.5) / 3, H * (row + 0.5) / 3, 6)
    assert describe_regions(m, (W, H))['location'] == GRID_NAMES[row][col]


def test_entire_surface():
    m = blank()
    m[5:235, 5:295] = True
    d = describe_regions(m, (W, H))
    assert d['location'] == 'entire surface' and d['scale'] == 'large'


def test_orientation_from_principal_axis():
    v = blank()
    v[20:200, 100:104] = True
    h = blank()
    h[100:103, 20:250] = True
    dg = blank()
    for i in range(150):
        dg[40 + i, 60 + i:63 + i] = True
    assert describe_regions(v, (W, H))['orientation'] == 'vertical'
    assert describe_regions(h, (W, H))['orientation'] == 'horizontal'
    d = describe_regions(dg, (W, H))
    assert d['orientation'] == 'diagonal' and d['shape'] == 'elongated'
    r = describe_regions(disk(blank(), 150, 120, 20), (W, H))
    assert r['orientation'] is None and r['shape'] == 'round'
    # boxes: aspect ratio
    assert describe_regions([(10, 10, 5, 80)], (W, H))['orientation'] == \
        'vertical'
    assert describe_regions([(10, 10, 50, 50)], (W, H))['shape'] == 'compact'


@pytest.mark.parametrize('r,scale', [(2, 'microscopic'), (6, 'small'),
                                     (20, 'medium'), (80, 'large')])
def test_scale_relative_to_image_area(r, scale):
    d = describe_regions(disk(blank(), 150, 120, r), (W, H))
    assert d['scale'] == scale
    assert d['area_fraction'] == pytest.approx(np.pi * r * r / (W * H),
                                               rel=0.35)


def test_patterns():
    iso = disk(blank(), 100, 100, 5)
    assert describe_regions(iso, (W, H))['pattern'] == 'isolated'
    scat = disk(disk(disk(blank(), 20, 20, 4), 280, 30, 4), 150, 220, 4)
    assert describe_regions(scat, (W, H))['pattern'] == 'scattered'
    clus = blank()
    for cx, cy in ((100, 100), (112, 104), (104, 114), (118, 118)):
        disk(clus, cx, cy, 3)
    d = describe_regions(clus, (W, H))
    assert d['pattern'] == 'clustered' and d['num_regions'] == 4
    lin = blank()
    for x in range(30, 280, 50):
        disk(lin, x, 120, 4)
    assert describe_regions(lin, (W, H))['pattern'] == 'linear arrangement'
    rad = blank()
    for ang in np.arange(0, 2 * np.pi, np.pi / 3):
        for t in range(40, 90):
            x, y = int(150 + t * np.cos(ang)), int(120 + t * np.sin(ang))
            rad[y - 1:y + 2, x - 1:x + 2] = True
    assert describe_regions(rad, (W, H))['pattern'] == 'radial distribution'
    # several masks and several boxes are one region set
    assert describe_regions([disk(blank(), 20, 20, 4),
                             disk(blank(), 280, 200, 4)],
                            (W, H))['num_regions'] == 2
    assert describe_regions([(0, 0, 5, 5), (200, 200, 5, 5)],
                            (W, H))['pattern'] == 'scattered'
    assert describe_regions(blank(), (W, H))['num_regions'] == 0


def test_build_caption_follows_template():
    c = build_caption('magnetic tile', 'sintered ferrite', 'crack',
                      'upper-left corner', 'an isolated vertical region',
                      'thermal stress during cooling')
    assert c == ('Magnetic tile made of sintered ferrite with crack located '
                 'at the upper-left corner, characterized by an isolated '
                 'vertical region, potentially caused by thermal stress '
                 'during cooling.')
    n = build_caption('steel strip', 'hot-rolled steel', is_normal=True)
    assert 'no visible defects' in n and n.startswith('Steel strip')


def test_caption_for_image_from_masks_and_root_causes():
    m = blank()
    m[10:70, 10:13] = True  # thin vertical crack in the upper-left cell
    meta = map_category('magnetic_tile', 'crack')
    c = caption_for_image('magnetic tile', 'sintered ferrite', [(meta, [m])],
                          (W, H))
    assert 'crack located at the upper-left corner' in c
    assert 'vertical elongated' in c and 'isolated' in c
    assert c.endswith(f'potentially caused by {meta["root_causes"][0]}.')
    assert extract_nouns(c)[:4] == ['magnetic tile', 'sintered ferrite',
                                    'crack', 'upper-left corner']
    two = caption_for_image(
        'steel strip', 'hot-rolled steel',
        [(map_category('neu_det', 'patches'), [(0, 0, 50, 50)]),
         (map_category('neu_det', 'scratches'), [(250, 200, 40, 5)])],
        (W, H))
    assert 'with patches located' in two and 'Additional scratch' in two
    lvl = caption_for_image('solar cell', 'polycrystalline silicon',
                            [(map_category('elpv', 'defective'), [])],
                            (300, 300), severity='high')
    assert 'high-severity' in lvl and 'located' not in lvl
