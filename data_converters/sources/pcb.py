# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""PKU PCB defect dataset (Huang & Wei) -> COCO (boxes).

Expected input tree (``PCB_DATASET`` as published)::

    PCB_DATASET/                        <- --root
    ├── images/
    │   ├── Missing_hole/01_missing_hole_01.jpg ...
    │   ├── Mouse_bite/ Open_circuit/ Short/ Spur/ Spurious_copper/
    ├── Annotations/
    │   ├── Missing_hole/01_missing_hole_01.xml ...   Pascal VOC boxes
    │   └── ...                                        (same sub-folders)
    ├── PCB_USED/                       defect-free templates (not used)
    └── rotation/                       rotated copies (not used)

Conversion: six categories (the folder names: ``Missing_hole``,
``Mouse_bite``, ``Open_circuit``, ``Short``, ``Spur``, ``Spurious_copper``);
every XML ``<object><name>`` (written in lower case, e.g. ``missing_hole``)
is matched case-insensitively to them, an unknown name is an error naming
the XML. Each XML gives box-only instances; the image is
``images/<folder>/<filename>``; ``image_label`` is the folder's class. The
XML size must match the image. No official split: a seeded split
stratified by folder is drawn.

Licence: released for research use by the Open Lab on Human Robot
Interaction, Peking University (no explicit licence).

Reference: W. Huang, P. Wei, "A PCB Dataset for Defects Detection and
Classification", arXiv:1901.08204 (2019).
"""
from typing import Any, List, Tuple

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, Instance, parse_voc_xml,
                                  register_converter)
from data_converters.sources._common import (find_by_stem, image_size,
                                             rel_posix, subdirs)

CLASSES = ('Missing_hole', 'Mouse_bite', 'Open_circuit', 'Short', 'Spur',
           'Spurious_copper')


def _norm(name: str) -> str:
    return name.strip().lower().replace(' ', '_').replace('-', '_')


@register_converter('pcb')
class PCBConverter(BaseConverter):
    """PKU PCB (see module docstring)."""
    license = 'research use (PKU Open Lab on Human Robot Interaction)'
    reference = ('Huang and Wei, A PCB Dataset for Defects Detection and '
                 'Classification, arXiv:1901.08204, 2019')
    classes = CLASSES

    def scan(self) -> List[Tuple[str, str]]:
        ann = self.root / 'Annotations'
        if not ann.is_dir() or not (self.root / 'images').is_dir():
            raise ConversionError(self.root, 'expected images/ and '
                                  'Annotations/ folders')
        by_norm = {_norm(c): c for c in CLASSES}
        items = []
        for d in subdirs(ann):
            cls = by_norm.get(_norm(d.name))
            if cls is None:
                raise ConversionError(d, f'unknown defect folder (known: '
                                      f'{", ".join(CLASSES)})')
            items += [(rel_posix(self.root, x), cls)
                      for x in sorted(d.glob('*.xml'))]
        return items

    def item_path(self, item: Any) -> str:
        return item[0]

    def load(self, item) -> ImageRecord:
        import xml.etree.ElementTree as ET
        xml_rel, cls = item
        xml_path = self.root / xml_rel
        (xw, xh), objs = parse_voc_xml(xml_path)
        by_norm = {_norm(c): c for c in CLASSES}
        folder = self.root / 'images' / xml_path.parent.name
        fname = (ET.parse(str(xml_path)).getroot().findtext('filename')
                 or '').strip()
        img = folder / fname if fname and (folder / fname).is_file() else \
            find_by_stem(folder, xml_path.stem)
        if img is None:
            raise ConversionError(xml_path, f'image {fname or xml_path.stem}'
                                  f' not found in {folder}')
        h, w = image_size(img)
        if (xw, xh) != (0, 0) and (xw, xh) != (w, h):
            raise ConversionError(xml_path, f'XML size {xw}x{xh} differs '
                                  f'from image size {w}x{h}')
        inst = []
        for k, (name, box, attrs) in enumerate(objs):
            c = by_norm.get(_norm(name))
            if c is None:
                raise ConversionError(xml_path, f'unknown class name '
                                      f'{name!r} (object {k})')
            inst.append(Instance(c, bbox=box, attributes=attrs,
                                 source_path=str(xml_path)))
        if not inst:
            raise ConversionError(xml_path, 'no <object> in a defect image')
        return ImageRecord(rel_posix(self.root, img), w, h, instances=inst,
                           image_label=cls)
