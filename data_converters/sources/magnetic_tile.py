# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Magnetic Tile surface defects (Huang et al., 2020) -> COCO.

Expected input tree (as published on GitHub)::

    magnetic_tile/                      <- --root
    ├── MT_Blowhole/Imgs/<stem>.jpg     grayscale image
    │                   <stem>.png      its pixel mask (same size)
    ├── MT_Break/Imgs/...
    ├── MT_Crack/Imgs/...
    ├── MT_Fray/Imgs/...
    ├── MT_Free/Imgs/...                defect-free (all-zero masks)
    └── MT_Uneven/Imgs/...

1,344 images: Blowhole 115, Break 85, Crack 57, Fray 32, Uneven 103 (392
defective) and Free 952 (normal). The class is only in the folder name.

Conversion:

* One category per defect folder (``blowhole, break, crack, fray,
  uneven``); every defect image gets ``image_label`` = its folder's class
  and one mask instance of that class (the whole thresholded mask; boxes per
  connected component are derived downstream via ``box_mode``).
* Masks are anti-aliased 0-255: foreground is ``value > 127``.
* ``MT_Free`` images are normal (``is_normal``, no annotations); their
  all-zero masks are not read unless ``config['check_normal_masks']``
  (then a non-empty or missing Free mask is an error).
* Empty masks in a defect folder (four ``MT_Uneven`` masks in the
  published data: exp3_num_45042, exp4_num_124690, exp4_num_352527,
  exp4_num_45057) are **not** normal: the image keeps its image-level label
  (uneven), gets no instance and ``attributes['empty_mask'] = True``; its
  caption names the defect without a location.
* There is no native split: a seeded split stratified by class (incl.
  normal) is drawn.

Licence: no licence file; the authors' README welcomes research use with
citation (treat as research-only).

Reference: Y. Huang, C. Qiu, K. Yuan, "Surface defect saliency of magnetic
tile", The Visual Computer 36, 85-96 (2020).
https://github.com/abin24/Magnetic-tile-defect-datasets.
"""
import os
from typing import List

import numpy as np

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, Instance, probe_image,
                                  read_mask, register_converter)

FOLDERS = {
    'MT_Blowhole': 'blowhole',
    'MT_Break': 'break',
    'MT_Crack': 'crack',
    'MT_Fray': 'fray',
    'MT_Uneven': 'uneven',
    'MT_Free': None,  # normal
}


@register_converter('magnetic_tile')
class MagneticTileConverter(BaseConverter):
    """Magnetic Tile: folder per class, mask ``<stem>.png`` beside the
    image."""
    license = ('research use with citation (authors\' README; no licence '
               'file)')
    reference = ('Huang, Qiu, Yuan. Surface defect saliency of magnetic '
                 'tile. The Visual Computer 36:85-96, 2020')
    classes = ('blowhole', 'break', 'crack', 'fray', 'uneven')
    threshold = 127

    def scan(self) -> List[str]:
        items = []
        found = False
        for folder in sorted(FOLDERS):
            d = self.root / folder / 'Imgs'
            if not d.is_dir():
                continue
            found = True
            for name in sorted(os.listdir(d)):
                if name.lower().endswith('.jpg'):
                    items.append(f'{folder}/Imgs/{name}')
        if not found:
            raise ConversionError(self.root, 'no MT_<Class>/Imgs folder '
                                  'found (is this the Magnetic Tile root?)')
        return items

    def load(self, rel: str) -> ImageRecord:
        folder = rel.split('/', 1)[0]
        cls = FOLDERS[folder]
        h, w = probe_image(os.path.join(self.root, rel))
        mask_path = os.path.join(self.root, rel[:-len('.jpg')] + '.png')
        if cls is None:
            if self.config.get('check_normal_masks', False):
                m = read_mask(mask_path, (h, w), self.threshold)
                if m.any():
                    raise ConversionError(mask_path, 'non-empty mask in the '
                                          'defect-free MT_Free folder')
            return ImageRecord(rel, w, h, is_normal=True)
        if not os.path.isfile(mask_path):
            raise ConversionError(mask_path, 'missing mask')
        mask = read_mask(mask_path, (h, w), self.threshold)
        if not np.any(mask):
            # documented quirk: defect image whose mask is empty
            return ImageRecord(rel, w, h, image_label=cls,
                               attributes={'empty_mask': True})
        return ImageRecord(
            rel, w, h, image_label=cls,
            instances=[Instance(cls, mask=mask, source_path=mask_path)])
