# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""GC10-DET steel surface defects -> COCO (boxes).

Expected input tree (as published with the paper)::

    GC10-DET/                      <- --root
    ├── 1/img_01_3402617700_00001.jpg ...   images, one folder per main class
    ├── 2/ ... 10/                          (folders 1..10)
    └── lable/img_01_3402617700_00001.xml   Pascal VOC boxes (folder name
                                            spelled "lable" in the release;
                                            "label" is accepted too)

Classes (XML ``<name>``): 1_chongkong (punching hole), 2_hanfeng (welding
line), 3_yueyawan (crescent gap), 4_shuiban (water spot), 5_youban (oil
spot), 6_siban (silk spot), 7_yiwu (inclusion), 8_yahen (rolled pit),
9_zhehen (crease), 10_yaozhe (waist folding); the English names
(``punching_hole`` ...) are mapped to them (``config['classes']`` may
replace the list).

Conversion: the XML of an image is ``lable/<stem>.xml``; each object is a
box-only instance with its own class; ``image_label`` is None (images hold
several classes). No official split: a seeded split stratified by the
first object's class.

Quirks of the distributed files, and what happens:

* ``<name>10_yaozhed</name>`` (sic) is read as ``10_yaozhe``.
* A stray label ``d`` (and any other unknown label) is an error of that
  image naming the XML and the label - listed in ``OUT/skipped.json`` with
  ``--on-error skip`` - unless ``config['drop_labels']`` lists it (then the
  box is dropped and the image records ``attributes['dropped_labels']``).
* An image without XML is an error of that image naming the expected XML,
  unless ``config['missing_xml']='normal'`` (then the image is kept as
  normal - the release has no normal images, so the default is an error).
* A file name found in several class folders is converted once: a
  byte-identical copy is dropped (listed in ``OUT/skipped.json`` as a
  duplicate of the kept one, so it cannot double count or leak across
  splits); copies whose bytes differ share one XML that cannot annotate
  both, so each is an error naming the other folders.

Licence: not stated by the authors (research use with citation).

Reference: X. Lv, F. Duan, J. Jiang, X. Fu, L. Gan, "Deep Metallic Surface
Defect Detection: The New Benchmark and Detection Network", Sensors 20(6)
1562 (2020).
"""
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, Instance, parse_voc_xml,
                                  register_converter)
from data_converters.sources._common import (image_size, list_images,
                                             rel_posix, subdirs)

#: Misspellings found in the distributed XMLs.
TYPOS = {'10_yaozhed': '10_yaozhe'}
CLASSES = ('1_chongkong', '2_hanfeng', '3_yueyawan', '4_shuiban',
           '5_youban', '6_siban', '7_yiwu', '8_yahen', '9_zhehen',
           '10_yaozhe')
ENGLISH = ('punching_hole', 'welding_line', 'crescent_gap', 'water_spot',
           'oil_spot', 'silk_spot', 'inclusion', 'rolled_pit', 'crease',
           'waist_folding')


@register_converter('gc10_det')
class GC10DETConverter(BaseConverter):
    """GC10-DET (see module docstring)."""
    license = 'not stated (research use with citation)'
    reference = ('Lv et al., Deep Metallic Surface Defect Detection: The New '
                 'Benchmark and Detection Network, Sensors 2020')

    def __init__(self, root, config: Optional[dict] = None) -> None:
        super().__init__(root, config)
        self.classes = tuple(self.config.get('classes') or CLASSES)
        self._alias = dict(zip(ENGLISH, CLASSES), **TYPOS) \
            if self.classes == CLASSES else {}
        self.drop_labels = {str(n) for n in
                            self.config.get('drop_labels') or ()}
        self.xml_dir = next((self.root / n for n in ('lable', 'label',
                                                     'Annotations')
                             if (self.root / n).is_dir()), None)
        if self.xml_dir is None:
            raise ConversionError(self.root, 'no lable/ (VOC XML) folder')

    def scan(self) -> List[Tuple[str, str, str]]:
        by_name: Dict[str, List[Path]] = {}
        folders = sorted((d for d in subdirs(self.root) if d != self.xml_dir),
                         key=lambda d: (not d.name.isdigit(),
                                        int(d.name) if d.name.isdigit()
                                        else 0, d.name))
        for d in folders:
            for p in list_images(d):
                by_name.setdefault(p.name, []).append(p)
        if not by_name:
            raise ConversionError(self.root, 'no images in class folders')
        items = []
        self.scan_report = []
        for name in sorted(by_name):
            paths = by_name[name]
            xml_rel = rel_posix(self.root,
                                self.xml_dir / f'{Path(name).stem}.xml')
            if len(paths) == 1:
                items.append((rel_posix(self.root, paths[0]), xml_rel, ''))
                continue
            data = [p.read_bytes() for p in paths]
            if all(b == data[0] for b in data[1:]):
                keep = rel_posix(self.root, paths[0])
                items.append((keep, xml_rel, ''))
                for p in paths[1:]:
                    rel = rel_posix(self.root, p)
                    self.scan_report.append({
                        'path': str(p), 'item': rel,
                        'reason': f'duplicate of {keep} (identical bytes); '
                        'converted once'})
                continue
            for p in paths:
                others = ', '.join(rel_posix(self.root, q) for q in paths
                                   if q != p)
                items.append((rel_posix(self.root, p), xml_rel, others))
        return items

    def item_path(self, item: Any) -> str:
        return item[0]

    def load(self, item) -> ImageRecord:
        rel, xml_rel, clash = item
        if clash:
            raise ConversionError(
                self.root / rel, f'file name also in {clash} with different '
                f'content; both would take {xml_rel}, which cannot annotate '
                'both (possible split leakage): remove or rename one')
        h, w = image_size(self.root / rel)
        xml = self.root / xml_rel
        if not xml.is_file():
            if self.config.get('missing_xml') == 'normal':
                return ImageRecord(rel, w, h, is_normal=True)
            raise ConversionError(xml, 'missing annotation for image '
                                  f'{rel}')
        (xw, xh), objs = parse_voc_xml(xml)
        known = set(self.classes)
        objs = [(self._alias.get(n.lower(), n), b, a) for n, b, a in objs]
        dropped = sorted({n for n, _, _ in objs if n in self.drop_labels})
        objs = [o for o in objs if o[0] not in self.drop_labels]
        for k, (n, _, _) in enumerate(objs):
            if n not in known:
                raise ConversionError(
                    xml, f'unknown class name {n!r} (object {k}; known: '
                    f'{", ".join(self.classes)}); list it in config '
                    'drop_labels to drop such boxes')
        if (xw, xh) != (0, 0) and (xw, xh) != (w, h):
            raise ConversionError(xml, f'XML size {xw}x{xh} differs from '
                                  f'image size {w}x{h}')
        inst = [Instance(n, bbox=b, attributes=a, source_path=str(xml))
                for n, b, a in objs]
        attrs = {'dropped_labels': dropped} if dropped else {}
        if not inst and dropped:
            raise ConversionError(xml, f'no box left after dropping '
                                  f'{dropped}')
        return ImageRecord(rel, w, h, instances=inst, is_normal=not inst,
                           attributes=attrs)
