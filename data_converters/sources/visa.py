# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""VisA (Visual Anomaly) -> COCO (label-map masks, split_csv splits).

Expected input tree (``VisA_20220922.tar`` as published)::

    VisA/                                       <- --root
    ├── split_csv/1cls.csv                      object,split,label,image,mask
    │   (2cls_fewshot.csv, 2cls_highshot.csv)   other protocols (config)
    ├── candle/
    │   ├── Data/Images/Normal/0000.JPG ...
    │   ├── Data/Images/Anomaly/000.JPG ...
    │   ├── Data/Masks/Anomaly/000.png          label map: 0 = background,
    │   │                                       one value per defect region
    │   └── image_anno.csv                      image,label,mask (defect
    │                                           descriptions; optional)
    ├── capsules/ cashew/ chewinggum/ fryum/ macaroni1/ macaroni2/
    └── pcb1/ pcb2/ pcb3/ pcb4/ pipe_fryum/

``1cls.csv`` rows look like::

    candle,train,normal,candle/Data/Images/Normal/0836.JPG,
    candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,
        candle/Data/Masks/Anomaly/000.png       (one line in the file)

Conversion:

* Splits and normal/anomaly labels come from the split CSV
  (``config['split_csv']``, default ``1cls.csv``; its ``split`` column is
  the COCO split). Without ``split_csv/`` the ``Data/Images/{Normal,Anomaly}``
  folders are read and a seeded stratified split is drawn.
* One category per object, ``"<object>/anomaly"`` (the taxonomy maps the
  object to its product/material).
* Masks are label maps, not binary: every distinct non-zero value is one
  instance (its value kept in ``attributes['mask_value']``). Missing, empty
  or wrongly sized masks are errors naming the mask.
* ``image_anno.csv``'s free-text defect description(s) of an image are kept
  in the COCO image's ``attributes['defect_labels']`` (list of str); they
  are not mapped to mask values because the release does not tie them.

Licence: CC BY 4.0.

Reference: Y. Zou, J. Jeong, L. Pemula, D. Zhang, O. Dabeer, "SPot-the-
Difference Self-Supervised Pre-training for Anomaly Detection and
Segmentation", ECCV 2022.
"""
import csv
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, register_converter)
from data_converters.sources._common import (image_size,
                                             label_map_instances,
                                             list_images, object_product,
                                             rel_posix, subdirs)

Item = Tuple[str, str, Optional[str], Optional[str]]  # rel, obj, mask, split


def _read_csv(path: Path) -> List[Dict[str, str]]:
    try:
        with open(path, encoding='utf-8-sig', newline='') as f:
            return [{(k or '').strip(): (v or '').strip()
                     for k, v in row.items()} for row in csv.DictReader(f)]
    except OSError as e:
        raise ConversionError(path, f'unreadable CSV ({e})') from None


@register_converter('visa')
class VisAConverter(BaseConverter):
    """VisA (see module docstring)."""
    license = 'CC BY 4.0'
    reference = ('Zou et al., SPot-the-Difference Self-Supervised '
                 'Pre-training for Anomaly Detection and Segmentation, '
                 'ECCV 2022')

    def __init__(self, root, config: Optional[dict] = None) -> None:
        super().__init__(root, config)
        self.split_csv = self.root / 'split_csv' / str(
            self.config.get('split_csv', '1cls.csv'))
        self._items = self._list()
        objs = sorted({it[1] for it in self._items})
        if not objs:
            raise ConversionError(self.root, 'no VisA images found '
                                  '(split_csv/1cls.csv or <object>/Data/'
                                  'Images/{Normal,Anomaly})')
        self.classes = tuple(f'{o}/anomaly' for o in objs)
        self._anno = self._read_image_anno(objs)

    def _list(self) -> List[Item]:
        if self.split_csv.is_file():
            self.native_splits = True
            items = []
            for k, row in enumerate(_read_csv(self.split_csv)):
                need = ('object', 'split', 'label', 'image')
                if any(not row.get(c) for c in need):
                    raise ConversionError(self.split_csv, f'row {k + 2}: '
                                          f'needs columns {need}')
                label = row['label'].lower()
                if label not in ('normal', 'anomaly'):
                    raise ConversionError(self.split_csv, f'row {k + 2}: '
                                          f'unknown label {row["label"]!r}')
                mask = row.get('mask') or None
                if label == 'anomaly' and not mask:
                    raise ConversionError(self.split_csv, f'row {k + 2}: '
                                          'anomaly without a mask path')
                items.append((row['image'], row['object'],
                              mask if label == 'anomaly' else None,
                              row['split']))
            return sorted(items)
        self.native_splits = False
        items = []
        for d in subdirs(self.root):
            base = d / 'Data'
            for p in list_images(base / 'Images' / 'Normal'):
                items.append((rel_posix(self.root, p), d.name, None, None))
            for p in list_images(base / 'Images' / 'Anomaly'):
                m = base / 'Masks' / 'Anomaly' / f'{p.stem}.png'
                items.append((rel_posix(self.root, p), d.name,
                              rel_posix(self.root, m), None))
        return items

    def _read_image_anno(self, objs) -> Dict[str, List[str]]:
        anno: Dict[str, List[str]] = {}
        for obj in objs:
            path = self.root / obj / 'image_anno.csv'
            if not path.is_file():
                continue
            for row in _read_csv(path):
                labels = [s.strip() for s in row.get('label', '').split(',')
                          if s.strip() and s.strip().lower() != 'normal']
                if row.get('image') and labels:
                    anno[row['image']] = labels
        return anno

    def scan(self) -> List[Item]:
        return list(self._items)

    def item_path(self, item: Any) -> str:
        return item[0]

    def load(self, item: Item) -> ImageRecord:
        rel, obj, mask, split = item
        h, w = image_size(self.root / rel)
        if mask is None:
            return ImageRecord(rel, w, h, is_normal=True, split=split,
                               **object_product(self.name, obj))
        cls = f'{obj}/anomaly'
        inst = label_map_instances(self.root / mask, cls, (h, w))
        attrs = {}
        if rel in self._anno:
            attrs['defect_labels'] = self._anno[rel]
        return ImageRecord(rel, w, h, instances=inst, image_label=cls,
                           split=split, attributes=attrs)
