# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""MVTec AD 2 -> COCO (pixel masks; train / validation / public test).

Expected input tree (as published by MVTec)::

    mvtec_ad_2/                              <- --root
    ├── can/
    │   ├── train/good/*.png                 defect-free
    │   ├── validation/good/*.png            defect-free
    │   ├── test_public/good/*.png           defect-free
    │   ├── test_public/bad/*.png            defective
    │   ├── test_public/ground_truth/bad/<stem>_mask.png
    │   ├── test_private/ ...                (no labels: not converted)
    │   └── test_private_mixed/ ...          (no labels: not converted)
    ├── fabric/ fruit_jelly/ rice/ sheet_metal/ vial/ wallplugs/ walnuts/

Conversion:

* The public release does not name defect types, so there is one category
  per object, ``"<object>/bad"`` (taxonomy: generic defect of that product).
* Splits: ``train`` -> train, ``validation`` -> val, ``test_public`` ->
  test. ``test_private*`` have no ground truth and are skipped.
* ``bad`` images get one instance from ``<stem>_mask.png`` (> 127) and
  ``image_label`` = the category; ``config['empty_mask']='image_label'``
  keeps a defective image whose mask is empty with its image label only
  (default: error naming the mask).
* ``config['categories']`` restricts the objects.

Licence: CC BY-NC-SA 4.0 (non-commercial research).

Reference: L. Heckler-Kram, J.-H. Neudeck, U. Scheler, R. König, C. Steger,
"The MVTec AD 2 Dataset: Advanced Scenarios for Unsupervised Anomaly
Detection", arXiv:2503.21622 (2025).
"""
from typing import Any, List, Optional, Tuple

from data_converters.base import (BaseConverter, ImageRecord,
                                  register_converter)
from data_converters.sources._common import (image_size, list_images,
                                             mask_instances, object_product,
                                             rel_posix)
from data_converters.sources.mvtec_ad import _objects

SPLITS = (('train/good', 'train', False), ('validation/good', 'val', False),
          ('test_public/good', 'test', False),
          ('test_public/bad', 'test', True))


@register_converter('mvtec_ad2')
class MVTecAD2Converter(BaseConverter):
    """MVTec AD 2 (see module docstring)."""
    license = 'CC BY-NC-SA 4.0'
    reference = ('Heckler-Kram et al., The MVTec AD 2 Dataset: Advanced '
                 'Scenarios for Unsupervised Anomaly Detection, '
                 'arXiv:2503.21622, 2025')
    native_splits = True

    def __init__(self, root, config: Optional[dict] = None) -> None:
        super().__init__(root, config)
        self.objects = _objects(self.root, self.config,
                                required=('train', 'test_public'))
        self.classes = tuple(f'{o}/bad' for o in self.objects)

    def scan(self) -> List[Tuple[str, str, bool, str]]:
        items = []
        for obj in self.objects:
            for sub, split, bad in SPLITS:
                for p in list_images(self.root / obj / sub):
                    items.append((rel_posix(self.root, p), obj, bad, split))
        return items

    def item_path(self, item: Any) -> str:
        return item[0]

    def load(self, item) -> ImageRecord:
        rel, obj, bad, split = item
        h, w = image_size(self.root / rel)
        if not bad:
            return ImageRecord(rel, w, h, is_normal=True, split=split,
                               **object_product(self.name, obj))
        stem = rel.rsplit('/', 1)[-1].rsplit('.', 1)[0]
        mask = (self.root / obj / 'test_public' / 'ground_truth' / 'bad' /
                f'{stem}_mask.png')
        cls = f'{obj}/bad'
        empty = 'normal' if self.config.get('empty_mask') == 'image_label' \
            else 'error'
        inst = mask_instances(mask, cls, (h, w), empty=empty)
        return ImageRecord(rel, w, h, instances=inst, image_label=cls,
                           split=split)
