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
* ``Validation_*`` is a random hold-out of one public copy, not an official
  split, so a seeded split stratified by the file-name class is drawn over
  all 1,800 images.

Licence: free for research use with citation (no licence file).

References: K. Song, Y. Yan, "A noise robust method based on completed local
binary patterns for hot-rolled steel strip surface defects", Applied Surface
Science 285 (2013); Y. He et al., "An end-to-end steel surface defect
detection approach via fusing multiple hierarchical features", IEEE TIM
69(4) (2020).
"""
import os
import xml.etree.ElementTree as ET
from typing import List, Tuple

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, Instance, probe_image,
                                  register_converter)

PAIRS = (('IMAGES', 'ANNOTATIONS'),
         ('Validation_Images', 'Validation_Annotations'))


def _text(node, tag: str, path) -> str:
    v = node.findtext(tag)
    if v is None or not v.strip():
        raise ConversionError(path, f'missing <{tag}>')
    return v.strip()


def parse_voc_xml(path, classes=None) -> Tuple[Tuple[int, int], list]:
    """Parse a Pascal VOC XML file.

    Returns:
        ((width, height) or (0, 0) if absent, [(name, [x, y, w, h],
        {'difficult': int, 'truncated': int}), ...])
    """
    try:
        root = ET.parse(str(path)).getroot()
    except FileNotFoundError:
        raise ConversionError(path, 'missing annotation file') from None
    except (ET.ParseError, OSError) as e:
        raise ConversionError(path, f'cannot parse XML ({e})') from None
    size = root.find('size')
    wh = (0, 0)
    if size is not None and size.findtext('width'):
        try:
            wh = (int(float(_text(size, 'width', path))),
                  int(float(_text(size, 'height', path))))
        except ValueError:
            raise ConversionError(path, 'invalid <size>') from None
    objs = []
    for k, obj in enumerate(root.findall('object')):
        name = _text(obj, 'name', path)
        if classes is not None and name not in classes:
            raise ConversionError(path, f'unknown class name {name!r} '
                                  f'(object {k})')
        box = obj.find('bndbox')
        if box is None:
            raise ConversionError(path, f'object {k} has no <bndbox>')
        try:
            x0, y0, x1, y1 = (float(_text(box, t, path))
                              for t in ('xmin', 'ymin', 'xmax', 'ymax'))
        except ValueError:
            raise ConversionError(path, f'object {k}: non-numeric box') \
                from None
        if x1 <= x0 or y1 <= y0:
            raise ConversionError(path, f'object {k}: degenerate box '
                                  f'{[x0, y0, x1, y1]}')
        attrs = {}
        for t in ('difficult', 'truncated'):
            v = obj.findtext(t)
            attrs[t] = int(float(v.strip())) if v and v.strip() else 0
        objs.append((name, [x0, y0, x1 - x0, y1 - y0], attrs))
    return wh, objs


@register_converter('neu_det')
class NEUDETConverter(BaseConverter):
    """NEU-DET: Pascal VOC boxes, class per XML object."""
    license = 'free for research use with citation (no licence file)'
    reference = ('Song & Yan, Applied Surface Science 285, 2013; He et al., '
                 'IEEE TIM 69(4), 2020')
    classes = ('crazing', 'inclusion', 'patches', 'pitted_surface',
               'rolled-in_scale', 'scratches')

    def scan(self) -> List[Tuple[str, str]]:
        items = []
        for img_dir, ann_dir in PAIRS:
            d = os.path.join(self.root, img_dir)
            if not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                stem, ext = os.path.splitext(name)
                if ext.lower() in ('.jpg', '.jpeg', '.png', '.bmp'):
                    items.append((f'{img_dir}/{name}',
                                  f'{ann_dir}/{stem}.xml'))
        if not items:
            raise ConversionError(self.root, 'no images in IMAGES/ or '
                                  'Validation_Images/ (is this NEU-DET?)')
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
        return ImageRecord(rel, w, h, instances=inst, image_label=label)
