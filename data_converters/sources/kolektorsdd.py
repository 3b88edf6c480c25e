# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""KolektorSDD (Kolektor Surface-Defect Dataset) -> COCO (pixel masks).

Expected input tree (``KolektorSDD.zip`` as published)::

    KolektorSDD/                   <- --root
    ├── kos01/
    │   ├── Part0.jpg              grayscale commutator image (~500x1250)
    │   ├── Part0_label.bmp        its mask (all zero: defect-free)
    │   ├── Part1.jpg
    │   └── ...                    (8 parts per item)
    ├── kos02/ ... kos50/

Conversion: one category, ``crack`` (the taxonomy's surface crack of an
electrical commutator). A part whose label is all zero is normal; otherwise
it gets one instance from the label (> 127) and ``image_label`` ``crack``.
A missing label or one whose size differs from the image is an error naming
the label file (``kos21/Part7`` is known to be inconsistent in some copies;
use ``--on-error skip`` to list and skip it). The release has no official
split (the authors used 3-fold cross-validation over items), so a seeded
split stratified by defective/normal is drawn.

Licence: CC BY-NC-SA 4.0.

Reference: D. Tabernik, S. Šela, J. Skvarč, D. Skočaj, "Segmentation-based
deep-learning approach for surface-defect detection", Journal of Intelligent
Manufacturing 31 (2020).
"""
import re
from typing import List

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, register_converter)
from data_converters.sources._common import (find_by_stem, image_size,
                                             list_images, mask_instances,
                                             rel_posix, subdirs)

CLASS = 'crack'


@register_converter('kolektorsdd')
class KolektorSDDConverter(BaseConverter):
    """KolektorSDD (see module docstring)."""
    license = 'CC BY-NC-SA 4.0'
    reference = ('Tabernik et al., Segmentation-based deep-learning approach '
                 'for surface-defect detection, J. Intell. Manuf. 2020')
    classes = (CLASS, )

    def scan(self) -> List[str]:
        items = []
        for d in subdirs(self.root):
            if not re.fullmatch(r'kos\d+', d.name):
                continue
            items += [rel_posix(self.root, p) for p in
                      list_images(d, exclude_suffixes=('_label', ))]
        if not items:
            raise ConversionError(self.root, 'no kosNN/PartN.jpg images '
                                  'found')
        return items

    def load(self, rel: str) -> ImageRecord:
        path = self.root / rel
        h, w = image_size(path)
        label = find_by_stem(path.parent, f'{path.stem}_label',
                             ('.bmp', '.png'))
        if label is None:
            raise ConversionError(path.parent / f'{path.stem}_label.bmp',
                                  'missing label mask')
        inst = mask_instances(label, CLASS, (h, w), empty='normal')
        if not inst:
            return ImageRecord(rel, w, h, is_normal=True)
        return ImageRecord(rel, w, h, instances=inst, image_label=CLASS)
