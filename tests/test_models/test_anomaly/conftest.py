# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Real Magnetic Tile images for the anomaly baselines' tests.

A handful of ``MT_Free`` normals (fitting) and defective images with their
masks (scoring), read straight from ``../shared/data/magnetic_tile`` and
resized to a small square input; tests skip when the data is absent.
"""
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np
import pytest
import torch

from mmdet.structures import DetDataSample

INPUT_SIZE = 64
DEFECT_CLASSES = ('MT_Blowhole', 'MT_Crack', 'MT_Break', 'MT_Fray')


def _load(path: Path, size: int,
          exposure: Optional[Callable] = None) -> Tuple[torch.Tensor, tuple]:
    """``path`` as a (3, size, size) uint8 BGR tensor and its original
    (h, w); ``exposure`` (e.g. ``NormalizeExposure().transform``) is applied
    to the full-size image first, as in a data pipeline."""
    import cv2
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # gray -> 3 ch BGR
    if img is None:
        raise FileNotFoundError(path)
    ori = img.shape[:2]
    if exposure is not None:
        img = exposure(dict(img=img))['img']
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(img).permute(2, 0, 1).contiguous(), ori


def _sample(path: Path, ori: tuple, size: int) -> DetDataSample:
    sample = DetDataSample()
    sample.set_metainfo(
        dict(img_path=str(path), ori_shape=ori, img_shape=(size, size),
             pad_shape=(size, size), scale_factor=(size / ori[1],
                                                   size / ori[0])))
    return sample


def make_batch(items: List[Tuple[Path, torch.Tensor, tuple]],
               size: int = INPUT_SIZE) -> dict:
    """A dataloader-style batch: uint8 BGR tensors + data samples."""
    return dict(
        inputs=[img for _, img, _ in items],
        data_samples=[_sample(p, ori, size) for p, _, ori in items])


@pytest.fixture(scope='session')
def mt_data(magnetic_tile_root):
    """``normals``: 6 MT_Free items; ``defects``: 4 defective items and
    ``masks``: their boolean masks (mask > 127) at the original size."""
    import cv2
    normals = []
    for path in sorted((magnetic_tile_root / 'MT_Free' / 'Imgs').glob(
            '*.jpg'))[:6]:
        img, ori = _load(path, INPUT_SIZE)
        normals.append((path, img, ori))
    defects, masks = [], []
    for cls in DEFECT_CLASSES:
        path = sorted((magnetic_tile_root / cls / 'Imgs').glob('*.jpg'))[0]
        img, ori = _load(path, INPUT_SIZE)
        mask = cv2.imread(str(path.with_suffix('.png')),
                          cv2.IMREAD_GRAYSCALE) > 127
        assert mask.shape == ori
        defects.append((path, img, ori))
        masks.append(mask)
    # two normal images in the test set as well (image AUROC needs both)
    test_normals = []
    for path in sorted((magnetic_tile_root / 'MT_Free' / 'Imgs').glob(
            '*.jpg'))[6:8]:
        img, ori = _load(path, INPUT_SIZE)
        test_normals.append((path, img, ori))
    return dict(
        normals=normals,
        defects=defects,
        masks=masks,
        test_normals=test_normals,
        test_normal_masks=[np.zeros(o, bool) for _, _, o in test_normals])
