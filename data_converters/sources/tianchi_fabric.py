# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Tianchi / Guangdong fabric defects (round 1) -> COCO (boxes).

2019 Guangdong Industrial Intelligent Manufacturing Innovation competition,
fabric defect detection (Alibaba Tianchi), round 1 layout::

    guangdong1_round1_train1_20190818/      <- --root
    ├── defect_Images/<name>.jpg             2446x1000 fabric images
    ├── normal_Images/<name>.jpg             defect-free (sub-folders ok)
    └── Annotations/anno_train.json          [{"name": "<name>.jpg",
                                               "defect_name": "结头",
                                               "bbox": [x1, y1, x2, y2]}, ...]

Classes: the 34 Chinese defect names of the release (破洞, 水渍, 油渍, 污渍,
三丝, 结头, 花板跳, 百脚, 毛粒, 粗经, 松经, 断经, 吊经, 粗维, 纬缩, 浆斑, 整经结,
星跳, 跳花, 断氨纶, 稀密档, 浪纹档, 色差档, 磨痕, 轧痕, 修痕, 烧毛痕, 死皱, 云织,
双纬, 双经, 跳纱, 筘路, 纬纱不良), mapped to English defect types by the
taxonomy (``imdd_mm/vocab/data/source_categories.json``). Category ids
follow that order.

Conversion: every ``anno_train.json`` entry is a box-only instance of its
image (``defect_Images/<name>``); ``image_label`` is the class when all
boxes of the image agree. ``normal_Images`` are normal. A box whose image
is missing, an unknown ``defect_name`` or a malformed entry is an error
naming ``anno_train.json``; a defect image without any box is an error
naming the image. Round 2 (template-pair layout) is not supported. No
official split: a seeded stratified split is drawn.

Licence: Alibaba Tianchi competition data, research/competition use only.

Reference: Alibaba Cloud Tianchi, "2019 Guangdong Industrial Intelligent
Manufacturing Innovation Competition - fabric defect detection",
https://tianchi.aliyun.com/competition/entrance/231748
"""
import json
from typing import Any, Dict, List, Optional, Tuple

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, Instance, register_converter)
from data_converters.sources._common import (image_size, list_images,
                                             rel_posix)

CLASSES = ('破洞', '水渍', '油渍', '污渍', '三丝', '结头', '花板跳', '百脚', '毛粒',
           '粗经', '松经', '断经', '吊经', '粗维', '纬缩', '浆斑', '整经结', '星跳',
           '跳花', '断氨纶', '稀密档', '浪纹档', '色差档', '磨痕', '轧痕', '修痕',
           '烧毛痕', '死皱', '云织', '双纬', '双经', '跳纱', '筘路', '纬纱不良')

Box = Tuple[str, List[float]]


@register_converter('tianchi_fabric')
class TianchiFabricConverter(BaseConverter):
    """Tianchi fabric round 1 (see module docstring)."""
    license = 'Alibaba Tianchi competition data (research use)'
    reference = ('Alibaba Tianchi, 2019 Guangdong Industrial Intelligent '
                 'Manufacturing Innovation Competition (fabric defects)')
    classes = CLASSES

    def __init__(self, root, config: Optional[dict] = None) -> None:
        super().__init__(root, config)
        self.ann_file = self.root / 'Annotations' / 'anno_train.json'
        self._boxes = self._read_boxes()

    def _read_boxes(self) -> Dict[str, List[Box]]:
        if not self.ann_file.is_file():
            raise ConversionError(self.ann_file, 'file not found')
        try:
            with open(self.ann_file, encoding='utf-8') as f:
                entries = json.load(f)
        except ValueError as e:
            raise ConversionError(self.ann_file, f'invalid JSON ({e})') \
                from None
        if not isinstance(entries, list):
            raise ConversionError(self.ann_file, 'expected a JSON list')
        boxes: Dict[str, List[Box]] = {}
        for k, e in enumerate(entries):
            try:
                name = str(e['name'])
                cls = str(e['defect_name']).strip()
                x1, y1, x2, y2 = (float(v) for v in e['bbox'])
            except (KeyError, TypeError, ValueError):
                raise ConversionError(self.ann_file, f'entry {k}: needs '
                                      '"name", "defect_name" and "bbox" '
                                      '[x1, y1, x2, y2]') from None
            if cls not in CLASSES:
                raise ConversionError(self.ann_file, f'entry {k}: unknown '
                                      f'defect_name {cls!r}')
            boxes.setdefault(name, []).append((cls, [x1, y1, x2 - x1,
                                                     y2 - y1]))
        return boxes

    def scan(self) -> List[Tuple[str, bool]]:
        items = []
        defect_dir = self.root / 'defect_Images'
        for name in sorted(self._boxes):
            p = defect_dir / name
            if not p.is_file():
                raise ConversionError(self.ann_file, f'image {name} not '
                                      f'found in {defect_dir}')
        for p in list_images(defect_dir):
            items.append((rel_posix(self.root, p), False))
        for p in list_images(self.root / 'normal_Images', recursive=True):
            items.append((rel_posix(self.root, p), True))
        if not items:
            raise ConversionError(self.root, 'no defect_Images/ or '
                                  'normal_Images/ images found')
        return items

    def item_path(self, item: Any) -> str:
        return item[0]

    def load(self, item) -> ImageRecord:
        rel, normal = item
        h, w = image_size(self.root / rel)
        if normal:
            return ImageRecord(rel, w, h, is_normal=True)
        boxes = self._boxes.get(rel.rsplit('/', 1)[-1])
        if not boxes:
            raise ConversionError(self.root / rel, 'defect image without '
                                  'any box in anno_train.json')
        inst = [Instance(c, bbox=b, source_path=str(self.ann_file))
                for c, b in boxes]
        labels = {c for c, _ in boxes}
        return ImageRecord(rel, w, h, instances=inst,
                           image_label=labels.pop() if len(labels) == 1
                           else None)
