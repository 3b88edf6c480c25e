# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""BTAD (beanTech Anomaly Detection) -> COCO (pixel masks, train/test).

Expected input tree (``BTech_Dataset_transformed`` as published)::

    BTech_Dataset_transformed/          <- --root
    ├── 01/
    │   ├── train/ok/0000.bmp ...       defect-free (01, 03: .bmp; 02: .png)
    │   ├── test/ok/0000.bmp ...        defect-free
    │   ├── test/ko/0000.bmp ...        defective
    │   └── ground_truth/ko/0000.png    mask of test/ko/<stem> (same stem,
    │                                   .png or .bmp)
    ├── 02/
    └── 03/

Conversion: one category per product, ``"<NN>/ko"`` (taxonomy: generic
defect of "btad product NN"); ``train`` / ``test`` splits as published;
``ok`` images are normal; a ``ko`` image gets one instance from its mask
(> 127). A missing, empty or wrongly sized mask is an error naming it.

Licence: CC BY-SA 4.0.

Reference: P. Mishra, R. Verk, D. Fornasier, C. Piciarelli, G. L. Foresti,
"VT-ADL: A Vision Transformer Network for Image Anomaly Detection and
Localization", IEEE ISIE 2021.
"""
from typing import Any, List, Optional, Tuple

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, register_converter)
from data_converters.sources._common import (find_by_stem, image_size,
                                             list_images, mask_instances,
                                             object_product, rel_posix,
                                             subdirs)


@register_converter('btad')
class BTADConverter(BaseConverter):
    """BTAD (see module docstring)."""
    license = 'CC BY-SA 4.0'
    reference = ('Mishra et al., VT-ADL: A Vision Transformer Network for '
                 'Image Anomaly Detection and Localization, ISIE 2021')
    native_splits = True

    def __init__(self, root, config: Optional[dict] = None) -> None:
        super().__init__(root, config)
        self.products = [d.name for d in subdirs(self.root)
                         if (d / 'train').is_dir() or (d / 'test').is_dir()]
        if not self.products:
            raise ConversionError(self.root, 'no BTAD product folders '
                                  '(<root>/01/train/ok, ...) found')
        self.classes = tuple(f'{p}/ko' for p in self.products)

    def scan(self) -> List[Tuple[str, str, bool, str]]:
        items = []
        for prod in self.products:
            for sub, split, bad in (('train/ok', 'train', False),
                                    ('test/ok', 'test', False),
                                    ('test/ko', 'test', True)):
                for p in list_images(self.root / prod / sub):
                    items.append((rel_posix(self.root, p), prod, bad, split))
        return items

    def item_path(self, item: Any) -> str:
        return item[0]

    def load(self, item) -> ImageRecord:
        rel, prod, bad, split = item
        h, w = image_size(self.root / rel)
        if not bad:
            return ImageRecord(rel, w, h, is_normal=True, split=split,
                               **object_product(self.name, prod))
        stem = rel.rsplit('/', 1)[-1].rsplit('.', 1)[0]
        gt_dir = self.root / prod / 'ground_truth' / 'ko'
        mask = find_by_stem(gt_dir, stem, ('.png', '.bmp'))
        if mask is None:
            raise ConversionError(gt_dir / f'{stem}.png', 'missing mask')
        cls = f'{prod}/ko'
        return ImageRecord(rel, w, h, image_label=cls, split=split,
                           instances=mask_instances(mask, cls, (h, w)))
