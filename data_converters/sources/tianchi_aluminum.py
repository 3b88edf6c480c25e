# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Tianchi / Guangdong aluminium profile surface defects -> COCO.

2018 Guangdong Industrial Intelligent Manufacturing Big Data competition
(Alibaba Tianchi). Both published rounds are read; the class is always a
folder name or a LabelMe label, in Chinese as released (English aliases
are accepted).

Round 2 (detection; the layout we document as primary)::

    guangdong_round2_train_20181011/        <- --root
    ├── 单瑕疵图片/<class>/<name>.jpg         single-defect images
    │                 <name>.json           LabelMe JSON: shapes with
    │                                       "label" and "points"
    ├── 多瑕疵图片/<name>.jpg + <name>.json   multi-defect images
    └── 无瑕疵样本/<name>.jpg                 defect-free (some copies:
                                            无瑕疵图片/)

Round 1 (classification)::

    guangdong_round1_train2_20180916/       <- --root
    ├── 无瑕疵样本/<name>.jpg                 defect-free
    ├── 瑕疵样本/<class>/<name>.jpg           image-level class: 不导电,
    │                                       擦花, 横条压凹, 桔皮, 漏底, 碰伤,
    │                                       起坑, 凸粉, 涂层开裂, 脏点
    └── [瑕疵样本/]其他/<class>/<name>.jpg    "other" defects, ~21 sub-classes
                                            (划伤, 变形, 驳口, 打白点, 铝屑,
                                            喷流, 漆泡, 杂色, 角位漏底 ...)

File names are Chinese (e.g. ``擦花20180830172530对照样本.jpg``); LabelMe
files are read as UTF-8 (with or without BOM), else GB18030.

Classes (Chinese, with the taxonomy's English type): 不导电 non-conductive
spot, 擦花 scuff, 角位漏底 corner leakage, 桔皮 orange peel, 漏底 exposed
substrate, 喷流 jet mark, 漆泡 paint bubble, 起坑 pit, 杂色 mottled colour,
脏点 dirty spot, 其他 other; plus any label the LabelMe files or folders
use that the taxonomy knows (e.g. 碰伤, 凸粉, 涂层开裂, 横条压凹 map to
"other defect" unless added to the taxonomy).

Conversion:

* An image with a sibling ``<name>.json`` gets one instance per shape:
  polygons (>= 3 points) become masks, 2-point shapes / rectangles become
  boxes; ``image_label`` is the single class when all shapes agree.
* Without JSON: images under a ``无瑕疵样本`` / ``normal`` folder are normal;
  otherwise the nearest parent folder that is a class name gives the
  image-level label (``瑕疵样本``, ``其他`` and round folders are not
  classes). An image that neither rule covers is an error naming it.
* Classes are the names found that the taxonomy table knows (sorted; the
  其他 sub-classes are classes of their own, with
  ``attributes['group'] = '其他'``). An image whose class (folder or
  LabelMe label) is not in the table is an error *of that image* - listed
  in ``OUT/skipped.json`` with ``--on-error skip`` - unless
  ``config['allow_unknown']`` (then the name becomes a class mapped to
  "other defect"). A LabelMe file that cannot be read is likewise an error
  of its image, never of the whole scan.
* No official split: a seeded stratified split is drawn.

Licence: Alibaba Tianchi competition data, research/competition use only.

Reference: Alibaba Cloud Tianchi, "2018 Guangdong Industrial Intelligent
Manufacturing Big Data Innovation Competition - aluminium profile surface
defect recognition", https://tianchi.aliyun.com/competition/entrance/231682
"""
import json
from pathlib import Path
from typing import Any, List, Optional, Tuple

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, Instance, register_converter)
from data_converters.sources._common import (image_size, list_images,
                                             points_bbox, polygon_mask,
                                             rel_posix)

SOURCE = 'tianchi_aluminum'
NORMAL_DIRS = ('无瑕疵样本', '无瑕疵图片', 'normal', 'Normal')
NOT_CLASSES = ('瑕疵样本', '单瑕疵图片', '多瑕疵图片', 'defect', 'images')
OTHER = '其他'


def known_classes(source: str) -> Tuple[str, ...]:
    from imdd_mm.vocab import load_taxonomy
    table = load_taxonomy()['sources'].get(source, {})
    return tuple(table.get('categories', {}))


def read_labelme(path: Path) -> List[Tuple[str, List[List[float]], str]]:
    """LabelMe JSON -> [(label, points, shape_type)]."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConversionError(path, f'cannot read LabelMe JSON ({e})') \
            from None
    try:
        try:
            text = raw.decode('utf-8-sig')
        except UnicodeDecodeError:
            text = raw.decode('gb18030')
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError) as e:
        raise ConversionError(path, f'cannot read LabelMe JSON ({e})') \
            from None
    shapes = data.get('shapes') if isinstance(data, dict) else None
    if not isinstance(shapes, list):
        raise ConversionError(path, 'no "shapes" list')
    out = []
    for k, s in enumerate(shapes):
        try:
            label = str(s['label']).strip()
            pts = [[float(x), float(y)] for x, y in s['points']]
        except (KeyError, TypeError, ValueError):
            raise ConversionError(path, f'shape {k}: needs "label" and '
                                  '"points" [[x, y], ...]') from None
        if not label or not pts:
            raise ConversionError(path, f'shape {k}: empty label or points')
        out.append((label, pts, str(s.get('shape_type') or 'polygon')))
    return out


def shape_instances(shapes, hw, source_path) -> List[Instance]:
    inst = []
    for label, pts, kind in shapes:
        if kind != 'rectangle' and len(pts) >= 3:
            inst.append(Instance(label, mask=polygon_mask(pts, hw),
                                 source_path=str(source_path)))
        else:
            inst.append(Instance(label, bbox=points_bbox(pts),
                                 source_path=str(source_path)))
    return inst


@register_converter(SOURCE)
class TianchiAluminumConverter(BaseConverter):
    """Tianchi aluminium (see module docstring)."""
    license = 'Alibaba Tianchi competition data (research use)'
    reference = ('Alibaba Tianchi, 2018 Guangdong Industrial Intelligent '
                 'Manufacturing Big Data Competition (aluminium profiles)')

    def __init__(self, root, config: Optional[dict] = None) -> None:
        super().__init__(root, config)
        self.known = set(known_classes(SOURCE))
        self._items, found = self._walk()
        if self.config.get('allow_unknown'):
            self.classes = tuple(sorted(found))
        else:
            self.classes = tuple(sorted(found & self.known))
        #: class names met in the data that the taxonomy does not know
        self.unknown = tuple(sorted(found - set(self.classes)))

    def _walk(self):
        items: List[Tuple[str, Optional[str], bool]] = []
        found = set()
        for p in list_images(self.root, recursive=True):
            rel = rel_posix(self.root, p)
            js = p.with_suffix('.json')
            parts = Path(rel).parts[:-1]
            if js.is_file():
                try:
                    found.update(label for label, _, _ in read_labelme(js))
                except ConversionError:
                    pass  # raised again by load(): an error of this image
                items.append((rel, rel_posix(self.root, js), False))
                continue
            if any(d in NORMAL_DIRS for d in parts):
                items.append((rel, None, True))
                continue
            cls = next((d for d in reversed(parts)
                        if d not in NOT_CLASSES
                        and not d.lower().startswith('guangdong')), None)
            if cls is None:
                raise ConversionError(p, 'neither a LabelMe JSON beside it '
                                      'nor a class or normal folder above '
                                      'it')
            found.add(cls)
            items.append((rel, 'class:' + cls, False))
        if not items:
            raise ConversionError(self.root, 'no images found')
        return items, found

    def scan(self) -> List[Tuple[str, Optional[str], bool]]:
        return list(self._items)

    def item_path(self, item: Any) -> str:
        return item[0]

    def _check_known(self, name: str, where) -> None:
        if name not in self.classes:
            raise ConversionError(where, f'class {name!r} is not in the '
                                  'taxonomy table of tianchi_aluminum (add '
                                  'it to imdd_mm/vocab/data/source_'
                                  'categories.json, or set config '
                                  'allow_unknown: true to keep it as "other '
                                  'defect")')

    def load(self, item) -> ImageRecord:
        rel, ann, normal = item
        if normal:
            h, w = image_size(self.root / rel)
            return ImageRecord(rel, w, h, is_normal=True)
        if ann.startswith('class:'):
            cls = ann[len('class:'):]
            self._check_known(cls, self.root / rel)
            h, w = image_size(self.root / rel)
            parts = Path(rel).parts[:-1]
            attrs = {'group': OTHER} if OTHER in parts and cls != OTHER \
                else {}
            return ImageRecord(rel, w, h, image_label=cls, attributes=attrs)
        js = self.root / ann
        shapes = read_labelme(js)
        for label, _, _ in shapes:
            self._check_known(label, js)
        h, w = image_size(self.root / rel)
        inst = shape_instances(shapes, (h, w), js)
        if not inst:
            return ImageRecord(rel, w, h, is_normal=True)
        labels = {i.category for i in inst}
        return ImageRecord(rel, w, h, instances=inst,
                           image_label=labels.pop() if len(labels) == 1
                           else None)
