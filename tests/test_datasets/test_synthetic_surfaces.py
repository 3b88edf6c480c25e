# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The procedural demo dataset: determinism, its folder-per-class layout and
its conversion by ``data_converters/convert.py folder`` (the CLI entry point,
run in-process to save the import time of a subprocess)."""
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest

from imdd_mm.datasets.synthetic_surfaces import (DEFECTS, NORMAL, SURFACES,
                                                 image_seed, render_sample,
                                                 write_surface_dataset)

COUNTS = dict(train=3, val=1, test=2)
SIZE = 32


def _tree(root: Path):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob('*')) if p.is_file()
    }


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp('surfaces') / 'src'
    cfg = write_surface_dataset(root, COUNTS, size=SIZE, seed=3)
    return root, cfg


@pytest.fixture(scope='module')
def converted(generated, tmp_path_factory):
    from data_converters.convert import main
    root, cfg = generated
    out = tmp_path_factory.mktemp('surfaces_coco')
    rc = main(['folder', '--root', str(root), '--config', str(cfg),
               '--out-dir', str(out), '--no-progress'])
    assert rc == 0
    return out


def test_same_seed_gives_identical_bytes(generated, tmp_path):
    root, _ = generated
    again = tmp_path / 'again'
    write_surface_dataset(again, COUNTS, size=SIZE, seed=3)
    first, second = _tree(root), _tree(again)
    assert list(first) == list(second)
    assert first == second
    other = tmp_path / 'other_seed'
    write_surface_dataset(other, COUNTS, size=SIZE, seed=4)
    third = _tree(other)
    differing = [k for k in first if k.endswith('.png') and first[k] !=
                 third[k]]
    assert len(differing) > len(first) // 2


def test_rerun_into_same_folder_removes_stale_images(tmp_path):
    write_surface_dataset(tmp_path / 'run', dict(train=3, val=2), size=16)
    (tmp_path / 'run' / 'images' / 'keep_me.png').write_bytes(b'user')
    write_surface_dataset(tmp_path / 'run', dict(train=1), size=16)
    write_surface_dataset(tmp_path / 'fresh', dict(train=1), size=16)
    rerun = _tree(tmp_path / 'run')
    assert rerun.pop('images/keep_me.png') == b'user'  # not ours: kept
    assert rerun == _tree(tmp_path / 'fresh')


def test_seed_does_not_depend_on_other_splits_or_classes(tmp_path):
    """An image is the same whichever other splits/classes are written."""
    write_surface_dataset(tmp_path / 'a', dict(train=2, test=1), size=SIZE,
                          seed=0)
    write_surface_dataset(tmp_path / 'b', dict(test=1), size=SIZE, seed=0,
                          defects=('hole', ))
    rel = 'images/test/hole/brushed_metal_0000.png'
    assert (tmp_path / 'a' / rel).read_bytes() == \
        (tmp_path / 'b' / rel).read_bytes()
    assert image_seed(0, 'test', 'hole', 0) != image_seed(0, 'train',
                                                          'hole', 0)


def test_layout(generated):
    root, cfg_path = generated
    cfg = json.loads(cfg_path.read_text())
    assert cfg['classes'] == list(DEFECTS)
    assert cfg['normal_classes'] == [NORMAL]
    assert (cfg['image_dir'], cfg['mask_dir']) == ('images', 'masks')
    for split, n in COUNTS.items():
        for cls in (NORMAL, ) + DEFECTS:
            images = sorted((root / 'images' / split / cls).glob('*.png'))
            assert len(images) == n
            assert {p.name.rsplit('_', 1)[0] for p in images} <= set(SURFACES)
            masks = root / 'masks' / split / cls
            if cls == NORMAL:
                assert not masks.exists()
                continue
            for img_path in images:
                img = cv2.imread(str(img_path), cv2.IMREAD_UNCHANGED)
                mask = cv2.imread(str(masks / img_path.name),
                                  cv2.IMREAD_UNCHANGED)
                assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
                assert mask.shape == (SIZE, SIZE)
                assert set(np.unique(mask)) <= {0, 255}
                assert (mask > 0).any(), img_path


@pytest.mark.parametrize('defect', DEFECTS)
def test_defects_non_empty_and_visible(defect):
    for surface in SURFACES:
        for size in (16, 64):
            for seed in range(6):
                img, mask = render_sample(surface, defect, size, seed)
                assert mask is not None and (mask > 0).any(), \
                    (surface, size, seed)
                assert not (mask > 0).all()
                pix = img.astype(np.float64)
                contrast = np.abs(pix[mask > 0].mean(0) -
                                  pix[mask == 0].mean(0)).max()
                assert contrast > 10, (surface, size, seed, contrast)
    img, mask = render_sample('pcb', None, 32, 0)
    assert mask is None and img.shape == (32, 32, 3)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='dent'):
        write_surface_dataset(tmp_path, dict(train=1), defects=('dent', ))
    with pytest.raises(ValueError, match='size'):
        write_surface_dataset(tmp_path, dict(train=1), size=8)
    with pytest.raises(ValueError, match='num_per_class'):
        write_surface_dataset(tmp_path, dict(train=-1))


def test_conversion_counts(generated, converted):
    root, _ = generated
    names = {}
    for split, n in COUNTS.items():
        coco = json.loads(
            (converted / 'annotations' / f'{split}.json').read_text())
        cats = {c['id']: c['name'] for c in coco['categories']}
        names = [cats[k] for k in sorted(cats)]
        assert names == list(DEFECTS)
        images = {im['id']: im for im in coco['images']}
        assert len(images) == n * (1 + len(DEFECTS))
        per_class = Counter(cats[a['category_id']]
                            for a in coco['annotations'])
        assert per_class == {d: n for d in DEFECTS}
        annotated = Counter(a['image_id'] for a in coco['annotations'])
        for im in images.values():
            assert im['split'] == split
            assert (root / im['file_name']).is_file()
            cls = im['file_name'].split('/')[2]
            if cls == NORMAL:
                assert im['is_normal'] is True
                assert im['id'] not in annotated
                assert im['image_label'] is None
            else:
                assert im['is_normal'] is False
                assert annotated[im['id']] == 1
                assert cats[im['image_label']] == cls
                assert cls in im['caption']
        for ann in coco['annotations']:
            im = images[ann['image_id']]
            mask = mask_util.decode(ann['segmentation'])
            assert mask.shape == (im['height'], im['width'])
            assert mask.sum() == ann['area'] > 0
            # the converted mask is the written mask file
            rel = im['file_name'].replace('images/', 'masks/', 1)
            written = cv2.imread(str(root / rel), cv2.IMREAD_GRAYSCALE) > 127
            assert np.array_equal(mask.astype(bool), written)
    lines = (converted / 'captions.jsonl').read_text().splitlines()
    assert len(lines) == sum(COUNTS.values()) * (1 + len(DEFECTS))


def test_defects_have_no_position_prior():
    """Defect pixels are uniform over the image: a centre-distance score map
    is at chance (P-AUROC ~ 0.5, computed here by rank counting)."""
    from imdd_mm.datasets.synthetic_surfaces import (DEFECTS, place_uniformly,
                                                     render_sample)
    from imdd_mm.evaluation.prior_maps import prior_score_map
    size = 48
    masks = [render_sample('concrete', d, size, 1000 * k + i)[1] > 0
             for k, d in enumerate(DEFECTS) for i in range(60)]
    density = np.mean(masks, axis=0)  # (size, size) defect frequency
    centre = prior_score_map('centre', size, size)
    # AUROC of the centre prior = P(score of a defect pixel > score of a
    # normal pixel), pooled over all masks
    pos = np.concatenate([centre[m] for m in masks])
    neg = np.concatenate([centre[~m] for m in masks])
    order = np.sort(neg)
    auroc = (np.searchsorted(order, pos, side='left') +
             np.searchsorted(order, pos, side='right')).mean() / 2 / len(neg)
    assert abs(auroc - 0.5) < 0.04, auroc
    inner = density[size // 4:-size // 4, size // 4:-size // 4].mean()
    assert 0.8 < inner / density.mean() < 1.2
    # the torus placement keeps the drawn area
    canvas = np.zeros((2 * size, 2 * size), np.uint8)
    canvas[size - 3:size + 3, size - 5:size + 5] = 1
    placed = place_uniformly(canvas, size, np.random.default_rng(0))
    assert placed.shape == (size, size) and placed.sum() == canvas.sum()
