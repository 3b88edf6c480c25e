# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""KolektorSDD2 -> COCO (pixel masks, native train/test).

Expected input tree (``KolektorSDD2.zip`` as published)::

    KolektorSDD2/                  <- --root
    ├── train/
    │   ├── 10000.png              colour image (~230x630)
    │   ├── 10000_GT.png           its mask (all zero: defect-free)
    │   └── ...                    2,332 images, 246 defective
    └── test/                      1,004 images, 110 defective

Conversion: one category, ``defect`` (scratches, spots, surface
imperfections; taxonomy: generic defect on an electrical commutator);
``train``/``test`` are the splits. An all-zero ``_GT`` mask means a normal
image; otherwise one instance from the mask (> 127). A missing or wrongly
sized mask is an error naming it.

Licence: CC BY-NC-SA 4.0.

Reference: J. Božič, D. Tabernik, D. Skočaj, "Mixed supervision for
surface-defect detection: from weakly to fully supervised learning",
Computers in Industry 129 (2021).
"""
from typing import Any, List, Tuple

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, register_converter)
from data_converters.sources._common import (image_size, list_images,
                                             mask_instances, rel_posix)

CLASS = 'defect'


@register_converter('kolektorsdd2')
class KolektorSDD2Converter(BaseConverter):
    """KolektorSDD2 (see module docstring)."""
    license = 'CC BY-NC-SA 4.0'
    reference = ('Božič et al., Mixed supervision for surface-defect '
                 'detection: from weakly to fully supervised learning, '
                 'Computers in Industry 2021')
    classes = (CLASS, )
    native_splits = True

    def scan(self) -> List[Tuple[str, str]]:
        items = []
        for split in ('train', 'test'):
            for p in list_images(self.root / split,
                                 exclude_suffixes=('_GT', )):
                items.append((rel_posix(self.root, p), split))
        if not items:
            raise ConversionError(self.root, 'no train/N.png or test/N.png '
                                  'images found')
        return items

    def item_path(self, item: Any) -> str:
        return item[0]

    def load(self, item) -> ImageRecord:
        rel, split = item
        path = self.root / rel
        h, w = image_size(path)
        gt = path.parent / f'{path.stem}_GT.png'
        inst = mask_instances(gt, CLASS, (h, w), empty='normal')
        if not inst:
            return ImageRecord(rel, w, h, is_normal=True, split=split)
        return ImageRecord(rel, w, h, instances=inst, image_label=CLASS,
                           split=split)
