# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""MVTec AD -> COCO (pixel masks, native train/test splits).

Expected input tree (as published by MVTec)::

    mvtec_anomaly_detection/            <- --root
    ├── bottle/
    │   ├── train/good/000.png ...      defect-free training images
    │   ├── test/good/000.png ...       defect-free test images
    │   ├── test/broken_large/000.png   defective test images, one folder
    │   │   ...                         per defect type
    │   └── ground_truth/broken_large/000_mask.png   binary masks (0/255)
    ├── cable/ ... zipper/              15 categories in all
    └── license.txt, readme.txt

Conversion:

* Categories are ``"<object>/<defect>"`` (e.g. ``"bottle/broken_large"``),
  one per (object, defect-type folder) found under ``test/``; the taxonomy
  maps the object to the product/material and the defect folder to the
  unified defect type (``imdd_mm/vocab/data/source_categories.json``).
* ``train/good`` -> split ``train``, ``test/*`` -> split ``test``; ``good``
  images are normal (no instances, ``image_label`` None).
* A defective image gets one instance from its mask
  (``ground_truth/<defect>/<stem>_mask.png``, thresholded at 127) and
  ``image_label`` = its category. A missing mask, a mask whose size differs
  from the image, or an empty mask is an error naming the mask file.
* ``config['categories']`` (list) restricts the objects converted.

Licence: CC BY-NC-SA 4.0 (non-commercial research).

Reference: P. Bergmann, M. Fauser, D. Sattlegger, C. Steger, "MVTec AD - A
Comprehensive Real-World Dataset for Unsupervised Anomaly Detection", CVPR
2019; P. Bergmann et al., "The MVTec Anomaly Detection Dataset", IJCV 129
(2021).
"""
from typing import Any, List, Optional, Tuple

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, register_converter)
from data_converters.sources._common import (image_size, list_images,
                                             mask_instances, object_product,
                                             rel_posix, subdirs)

NORMAL = 'good'


def _objects(root, config, required=('train', 'test')) -> List[str]:
    objs = [d.name for d in subdirs(root)
            if any((d / r).is_dir() for r in required)]
    wanted = config.get('categories')
    if wanted:
        missing = sorted(set(wanted) - set(objs))
        if missing:
            raise ConversionError(root, f'categories {missing} not found')
        objs = [o for o in objs if o in set(wanted)]
    if not objs:
        raise ConversionError(
            root, 'no category folders with ' + '/'.join(required) +
            ' found (expected <root>/<category>/' + required[0] + '/...)')
    return objs


@register_converter('mvtec_ad')
class MVTecADConverter(BaseConverter):
    """MVTec AD (see module docstring)."""
    license = 'CC BY-NC-SA 4.0'
    reference = ('Bergmann et al., MVTec AD - A Comprehensive Real-World '
                 'Dataset for Unsupervised Anomaly Detection, CVPR 2019')
    native_splits = True

    def __init__(self, root, config: Optional[dict] = None) -> None:
        super().__init__(root, config)
        self.objects = _objects(self.root, self.config)
        self.classes = tuple(
            f'{o}/{d.name}' for o in self.objects
            for d in subdirs(self.root / o / 'test') if d.name != NORMAL)

    def scan(self) -> List[Tuple[str, str, Optional[str], str]]:
        items = []
        for obj in self.objects:
            for p in list_images(self.root / obj / 'train' / NORMAL):
                items.append((rel_posix(self.root, p), obj, None, 'train'))
            for d in subdirs(self.root / obj / 'test'):
                defect = None if d.name == NORMAL else d.name
                for p in list_images(d):
                    items.append((rel_posix(self.root, p), obj, defect,
                                  'test'))
        return items

    def item_path(self, item: Any) -> str:
        return item[0]

    def load(self, item) -> ImageRecord:
        rel, obj, defect, split = item
        h, w = image_size(self.root / rel)
        if defect is None:
            return ImageRecord(rel, w, h, is_normal=True, split=split,
                               **object_product(self.name, obj))
        stem = rel.rsplit('/', 1)[-1].rsplit('.', 1)[0]
        mask = self.root / obj / 'ground_truth' / defect / f'{stem}_mask.png'
        cls = f'{obj}/{defect}'
        inst = mask_instances(mask, cls, (h, w))
        return ImageRecord(rel, w, h, instances=inst, image_label=cls,
                           split=split)
