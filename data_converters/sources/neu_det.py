# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""NEU surface defect database, detection boxes (NEU-DET) -> COCO.

Expected input tree (the published Pascal-VOC layout; some copies move a
few pairs into ``Validation_*`` - both folders are read, together they are
the full 1,800 images)::

    neu_det/                              <- --root
    ├── IMAGES/<class>_<n>.jpg            200x200 (gray content, 3 channels)
    ├── ANNOTATIONS/<class>_<n>.xml       Pascal VOC boxes
    ├── Validation_Images/<class>_<n>.jpg (optional)
    └── Validation_Annotations/<class>_<n>.xml

    NEU-DET/                              <- --root (or its parent): the
    ├── train/images/<class>/<class>_<n>.jpg    widely used Kaggle copy
    ├── train/annotations/<class>_<n>.xml
    ├── validation/images/<class>/<class>_<n>.jpg
    └── validation/annotations/<class>_<n>.xml

Classes: crazing, inclusion, patches, pitted_surface, rolled-in_scale,
scratches (300 images each, 4,189 boxes, no normal images).

Conversion:

* Each box takes its class **from its XML ``<object><name>``**, not from the
  file name (188 boxes differ; images can hold several classes). An XML
  class outside the six is an error naming the XML file.
* ``image_label`` is the file-name class (the NEU classification label).
* ``<difficult>`` is kept as ``attributes['difficult']`` (0/1; ``iscrowd``
  stays 0), ``<truncated>`` likewise. Whitespace in the XML is stripped.
* Boxes: ``[xmin, ymin, xmax - xmin, ymax - ymin]`` (VOC pixel coordinates
  as written), box-only instances (``attributes['box_only']``).
* The XML size must match the decoded image size (depth is ignored: the
  XML says 1, the JPGs have 3 channels).
* ``Validation_*`` (and the Kaggle copy's ``train``/``validation``) is a
  random hold-out of one public copy, not an official split, so a seeded
  split stratified by the file-name class is drawn over all 1,800 images;
  the Kaggle folder is kept in ``attributes['copy_split']``.

Licence: free for research use with citation (no licence file).

References: K. Song, Y. Yan, "A noise robust method based on completed local
binary patterns for hot-rolled steel strip surface defects", Applied Surface
Science 285 (2013); Y. He et al., "An end-to-end steel surface defect
detection approach via fusing multiple hierarchical features", IEEE TIM
69(4) (2020).
"""
import os
from typing import List, Tuple

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, Instance, parse_voc_xml,
                                  probe_image, register_converter)

PAIRS = (('IMAGES', 'ANNOTATIONS'),
         ('Validation_Images', 'Validation_Annotations'))
KAGGLE_SPLITS = ('train', 'validation')
_EXTS = ('.jpg', '.jpeg', '.png', '.bmp')


@register_converter('neu_det')
class NEUDETConverter(BaseConverter):
    """NEU-DET: Pascal VOC boxes, class per XML object."""
    license = 'free for research use with citation (no licence file)'
    reference = ('Song & Yan, Applied Surface Science 285, 2013; He et al., '
                 'IEEE TIM 69(4), 2020')
    classes = ('crazing', 'inclusion', 'patches', 'pitted_surface',
               'rolled-in_scale', 'scratches')

    def scan(self) -> List[Tuple[str, str]]:
        base = ''
        if not any(os.path.isdir(os.path.join(self.root, d))
                   for d in (PAIRS[0][0], PAIRS[1][0]) + KAGGLE_SPLITS) \
                and os.path.isdir(os.path.join(self.root, 'NEU-DET')):
            base = 'NEU-DET/'
        folders = [(base + i, base + a) for i, a in PAIRS]  # as published
        for sub in KAGGLE_SPLITS:  # Kaggle: <split>/images/<class>/
            d = os.path.join(self.root, base + sub, 'images')
            if os.path.isdir(d):
                folders += [(f'{base}{sub}/images/{c}',
                             f'{base}{sub}/annotations')
                            for c in sorted(os.listdir(d))]
        items = []
        for img_dir, ann_dir in folders:
            d = os.path.join(self.root, img_dir)
            if not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                stem, ext = os.path.splitext(name)
                if ext.lower() in _EXTS:
                    items.append((f'{img_dir}/{name}',
                                  f'{ann_dir}/{stem}.xml'))
        if not items:
            raise ConversionError(self.root, 'no images in IMAGES/, '
                                  'Validation_Images/ or {train,validation}/'
                                  'images/<class>/ (is this NEU-DET?)')
        return items

    def item_path(self, item) -> str:
        return item[0]

    def load(self, item) -> ImageRecord:
        rel, xml_rel = item
        h, w = probe_image(os.path.join(self.root, rel))
        xml_path = os.path.join(self.root, xml_rel)
        (xw, xh), objs = parse_voc_xml(xml_path, set(self.classes))
        if (xw, xh) != (0, 0) and (xw, xh) != (w, h):
            raise ConversionError(xml_path, f'XML size {xw}x{xh} differs '
                                  f'from image size {w}x{h}')
        stem = rel.rsplit('/', 1)[1].rsplit('.', 1)[0]
        label = stem.rsplit('_', 1)[0]
        if label not in self.classes:
            label = None
        inst = [Instance(name, bbox=box, attributes=attrs,
                         source_path=xml_path)
                for name, box, attrs in objs]
        parts = rel.split('/')
        attrs = {}
        if len(parts) >= 4 and parts[-3] == 'images' and \
                parts[-4] in KAGGLE_SPLITS:
            attrs['copy_split'] = parts[-4]
        return ImageRecord(rel, w, h, instances=inst, image_label=label,
                           attributes=attrs)
