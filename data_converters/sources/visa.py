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
    │   │                                       k = defect class k of the
    │   │                                       object (id2class table)
    │   └── image_anno.csv                      image,label,mask (defect
    │                                           descriptions; optional)
    └── id2class.json                           optional: {object: {"k":
                                                name}}; default: the
                                                release's table (below)
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
* One category per defect class of each object,
  ``"<object>/<defect class>"`` (e.g. ``candle/chunk of wax missing``), 78
  in all, named by the release's ``id2class`` table (``ID2CLASS`` below,
  from ``id2class.json`` of github.com/amazon-science/spot-diff; names
  lower-cased, spelling as released). The taxonomy maps each to a defect
  type and the object to its product/material.
* Masks are label maps whose pixel value is the defect-class id of the
  object: every distinct non-zero value is one instance of its own class
  (regions of different classes are never merged; the value is kept in
  ``attributes['mask_value']``). ``image_label`` is the class when the
  image holds one class only, else None. A value the table does not know,
  or a missing, empty or wrongly sized mask, is an error naming the mask.
  An object missing from the table falls back to one category
  ``"<object>/anomaly"``.
* ``image_anno.csv``'s free-text defect description(s) of an image are kept
  in the COCO image's ``attributes['defect_labels']`` (list of str).

Licence: CC BY 4.0.

Reference: Y. Zou, J. Jeong, L. Pemula, D. Zhang, O. Dabeer, "SPot-the-
Difference Self-Supervised Pre-training for Anomaly Detection and
Segmentation", ECCV 2022.
"""
import csv
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, Instance, read_image,
                                  register_converter)
from data_converters.sources._common import (image_size,
                                             label_map_instances,
                                             list_images, object_product,
                                             rel_posix, subdirs)

Item = Tuple[str, str, Optional[str], Optional[str]]  # rel, obj, mask, split

#: The VisA release's mask value -> defect class table (``id2class.json``
#: of github.com/amazon-science/spot-diff, Apache-2.0; 0 = background).
ID2CLASS: Dict[str, Tuple[str, ...]] = {
    'candle': ('Chunk Of Wax Missing', 'Damaged Corner of Packaging',
               'weird candle wick', 'Different Colour Spot',
               'Extra Wax in Candle', 'Foreign Particals on Candle',
               'Wax Melded out of the candle', 'Other'),
    'capsules': ('Bubble', 'Discolor', 'Scratch', 'Leak', 'Misshape'),
    'fryum': ('Burnt', 'Corner or Edge Breakage', 'Different Colour Spot',
              'Fryum Stuck Together', 'Middle Breakage',
              'Similar Colour Spot', 'Small Scratches', 'Other'),
    'cashew': ('Burnt', 'Corner or Edge Breakage', 'Different Colour Spot',
               'Middle Breakage', 'Small Holes', 'Small Scratches',
               'Stuck Together', 'Same Colour Spot', 'Other'),
    'chewinggum': ('Chunk of gum missing', 'Corner Missing', 'Scratches',
                   'Similar Colour Spot', 'Small Cracks', 'Other'),
    'macaroni1': ('Chip Around Edge And Corner', 'Different Colour Spot',
                  'Middle Breakage', 'Similar Colour Spot', 'Small Cracks',
                  'Small Scratches', 'Other'),
    'macaroni2': ('Breakage down the middle',
                  'Color spot similar to the Object', 'Different Color spot',
                  'Small chip around edge', 'Small Cracks', 'Small Scratches',
                  'Other'),
    'pcb1': ('Bent', 'Melt', 'Scratch', 'Missing'),
    'pcb2': ('Bent', 'Melt', 'Scratch', 'Missing'),
    'pcb3': ('Bent', 'Melt', 'Scratch', 'Missing'),
    'pcb4': ('Burnt', 'Scratch', 'Missing', 'Damage', 'Extra', 'Wrong Place',
             'Dirt'),
    'pipe_fryum': ('Burnt', 'Corner And Edge Breakage',
                   'Different Colour Spot', 'Middle Breakage',
                   'Similar Colour Spot', 'Small Scratches', 'Stuck Together',
                   'Small Cracks', 'Other'),
}


def read_id2class(path: Path) -> Dict[str, Tuple[str, ...]]:
    """``id2class.json`` (``{object: {"0": "BACKGROUND", "1": name, ...}}``)
    -> ``{object: (name of 1, name of 2, ...)}``."""
    import json
    try:
        data = json.loads(path.read_text(encoding='utf-8-sig'))
        out = {}
        for obj, table in data.items():
            ids = sorted(int(k) for k in table if int(k) != 0)
            if ids != list(range(1, len(ids) + 1)):
                raise ValueError(f'{obj}: ids must be 1..K, got {ids}')
            out[str(obj)] = tuple(str(table[str(i)]) for i in ids)
        return out
    except OSError as e:
        raise ConversionError(path, f'unreadable ({e})') from None
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise ConversionError(path, f'not an id2class table ({e})') from None


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
        table_path = self.config.get('id2class')
        table_path = Path(table_path) if table_path else \
            self.root / 'id2class.json'
        if self.config.get('id2class') or table_path.is_file():
            self.id2class = read_id2class(table_path)
        else:
            self.id2class = dict(ID2CLASS)
        classes = []
        self._value_class: Dict[str, Dict[int, str]] = {}
        for o in objs:
            names = self.id2class.get(o)
            if names:
                self._value_class[o] = {
                    k + 1: f'{o}/{n.strip().lower()}'
                    for k, n in enumerate(names)}
                classes += self._value_class[o].values()
            else:
                classes.append(f'{o}/anomaly')
        self.classes = tuple(classes)
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

    @staticmethod
    def _class_instances(mask_path: Path, obj: str, table: Dict[int, str],
                         hw: Tuple[int, int]) -> List[Instance]:
        """One instance per defect-class id present in the label map."""
        m = read_image(mask_path, cv2.IMREAD_UNCHANGED)
        if m.ndim == 3:
            if not (m == m[..., :1]).all():
                raise ConversionError(mask_path, 'colour mask; expected a '
                                      'label map of defect-class ids')
            m = m[..., 0]
        if tuple(m.shape) != tuple(hw):
            raise ConversionError(
                mask_path, f'mask size {m.shape[1]}x{m.shape[0]} (WxH) '
                f'differs from image size {hw[1]}x{hw[0]}')
        values = [int(v) for v in np.unique(m) if v != 0]
        if not values:
            raise ConversionError(mask_path, 'empty mask')
        bad = [v for v in values if v not in table]
        if bad:
            raise ConversionError(
                mask_path, f'mask value(s) {bad} are not defect classes of '
                f'{obj} (id2class knows 1..{len(table)})')
        return [Instance(table[v], mask=(m == v), source_path=str(mask_path),
                         attributes={'mask_value': v}) for v in values]

    def load(self, item: Item) -> ImageRecord:
        rel, obj, mask, split = item
        h, w = image_size(self.root / rel)
        if mask is None:
            return ImageRecord(rel, w, h, is_normal=True, split=split,
                               **object_product(self.name, obj))
        mask_path = self.root / mask
        table = self._value_class.get(obj)
        if table is None:
            inst = label_map_instances(mask_path, f'{obj}/anomaly', (h, w))
        else:
            inst = self._class_instances(mask_path, obj, table, (h, w))
        labels = {i.category for i in inst}
        attrs = {}
        if rel in self._anno:
            attrs['defect_labels'] = self._anno[rel]
        return ImageRecord(rel, w, h, instances=inst,
                           image_label=labels.pop() if len(labels) == 1
                           else None, split=split,
                           attributes=attrs)
