# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""SDNET2018 concrete crack images -> COCO (image-level labels).

Expected input tree (as published, Utah State University)::

    SDNET2018/                 <- --root
    ├── D/                     bridge decks
    │   ├── CD/*.jpg           cracked     (256x256 sub-images)
    │   └── UD/*.jpg           uncracked
    ├── P/                     pavements
    │   ├── CP/*.jpg
    │   └── UP/*.jpg
    └── W/                     walls
        ├── CW/*.jpg
        └── UW/*.jpg

Conversion: three categories, ``deck/crack``, ``pavement/crack``,
``wall/crack`` (taxonomy: concrete crack on concrete deck / pavement /
wall); ``C*`` images get that image-level label (no masks or boxes), ``U*``
images are normal with the structure as product. Other folders are
ignored; an empty dataset is an error. No official split: a seeded split
stratified by category (and normal) is drawn.

Licence: CC BY 4.0.

Reference: S. Dorafshan, R. J. Thomas, M. Maguire, "SDNET2018: An annotated
image dataset for non-contact concrete crack detection using deep
convolutional neural networks", Data in Brief 21 (2018).
"""
from typing import Any, List, Tuple

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, register_converter)
from data_converters.sources._common import (image_size, list_images,
                                             object_product, rel_posix)

STRUCTURES = (('D', 'deck'), ('P', 'pavement'), ('W', 'wall'))
CLASSES = tuple(f'{name}/crack' for _, name in STRUCTURES)


@register_converter('sdnet2018')
class SDNET2018Converter(BaseConverter):
    """SDNET2018 (see module docstring)."""
    license = 'CC BY 4.0'
    reference = ('Dorafshan, Thomas and Maguire, SDNET2018: An annotated '
                 'image dataset for non-contact concrete crack detection '
                 'using deep convolutional neural networks, Data in Brief '
                 '2018')
    classes = CLASSES

    def scan(self) -> List[Tuple[str, str, bool]]:
        items = []
        for letter, name in STRUCTURES:
            for prefix, cracked in (('C', True), ('U', False)):
                folder = self.root / letter / f'{prefix}{letter}'
                items += [(rel_posix(self.root, p), name, cracked)
                          for p in list_images(folder)]
        if not items:
            raise ConversionError(self.root, 'no D/CD, D/UD, P/CP, P/UP, '
                                  'W/CW or W/UW images found')
        return items

    def item_path(self, item: Any) -> str:
        return item[0]

    def load(self, item) -> ImageRecord:
        rel, structure, cracked = item
        h, w = image_size(self.root / rel)
        if not cracked:
            return ImageRecord(rel, w, h, is_normal=True,
                               **object_product(self.name, structure))
        return ImageRecord(rel, w, h, image_label=f'{structure}/crack')
