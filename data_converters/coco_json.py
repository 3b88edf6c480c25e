# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""``coco``: COCO detection / instance JSON -> IMDD COCO + captions.

For sources that ship COCO annotations (Tianchi Bai Jiu, Roboflow "COCO"
exports, CVAT/COCO-Annotator exports, ...). Expected input trees::

    ROOT/                                  one file: seeded split
    ├── <image_dir>/<file_name>            (image_dir: 'images' when that
    └── annotations.json                    folder exists, else ROOT)

    ROOT/                                  one file per split: native splits
    ├── annotations/instances_train2017.json   (or train.json,
    ├── annotations/instances_val2017.json      _annotations.coco.json in
    ├── train2017/<file_name>                   train/ valid/ test/, ...)
    └── val2017/<file_name>

The image of ``images[i]`` is looked up as ``<image_dir>/<file_name>``,
then ``<image_dir>/<split>/<file_name>``, ``<image_dir>/<split>2017/...``
and beside the JSON. Annotations: ``segmentation`` as polygons
(``[[x1, y1, ...], ...]``), uncompressed or compressed RLE, or absent /
empty (then the ``bbox`` is a box-only instance). Crowd regions
(``iscrowd: 1``) are kept as masks flagged ``attributes['crowd']``.

Config keys (all optional; see ``data_converters/generic.py`` for
``source, license, reference, product, material, domain, taxonomy``)::

    ann_file: annotations.json       # or a list, or {split: file}; default:
                                     # discovered (see above)
    image_dir: images                # folder the file_names are relative to
    normal_categories: [背景]         # names or ids whose annotations mark a
                                     # defect-free image (dropped); an image
                                     # with only those is normal
    classes: [...]                   # category names kept, in id order
                                     # (default: every other category,
                                     # sorted by COCO id)
    unannotated: normal              # image without annotations: normal |
                                     # error

Splits: with several annotation files, the split name comes from each
file name (``train``, ``val``, ``valid``, ``validation``, ``test``,
optionally with a year and an ``instances_`` prefix) or its folder
(``valid/_annotations.coco.json``), or from the ``{split: file}`` mapping;
a single file gets a seeded stratified split.

Checks (each a :class:`ConversionError` naming the file): unreadable or
non-COCO JSON, an annotation whose ``image_id`` is not in ``images``,
duplicate file names, unknown ``category_id``, image size differing from
``width``/``height``, masks of the wrong size, missing images. Annotation
``id``\\ s are not used (some releases repeat them).

Licence of this code: Apache-2.0; the data keep their own licence.
"""
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from pycocotools import mask as mask_utils

from data_converters.base import (ConversionError, ImageRecord, Instance,
                                  probe_image, register_converter)
from data_converters.generic import SPLIT_ALIASES, GenericConverter
from data_converters.sources._common import read_json

_SPLIT_RE = re.compile(r'(?:^|[_\-.])(train|val|valid|validation|test)'
                       r'(?:\d{4})?(?:$|[_\-.])')


def split_from_name(path: Path) -> Optional[str]:
    """``instances_val2017.json`` -> ``'val'``; also looks at the parent
    folder (Roboflow: ``valid/_annotations.coco.json``)."""
    for text in (path.stem.lower(), path.parent.name.lower()):
        m = _SPLIT_RE.search(text)
        if m:
            return SPLIT_ALIASES[m.group(1)]
    return None


def read_coco_json(path: Path) -> Dict[str, Any]:
    """Read and shape-check a COCO JSON file."""
    d = read_json(path, 'COCO JSON')
    if not isinstance(d, dict) or not isinstance(d.get('images'), list):
        raise ConversionError(path, 'not a COCO file (no "images" list)')
    for key in ('annotations', 'categories'):
        if not isinstance(d.get(key, []), list):
            raise ConversionError(path, f'"{key}" is not a list')
    return d


def coco_segmentation_mask(seg: Any, hw: Tuple[int, int],
                           where: str) -> Optional[np.ndarray]:
    """Polygon list / RLE dict -> bool mask (H, W); None when ``seg`` is
    empty (box-only annotation)."""
    h, w = hw
    if seg is None or (isinstance(seg, list) and not seg):
        return None
    if isinstance(seg, list) and all(isinstance(v, (int, float))
                                     for v in seg):
        seg = [seg]  # one flat polygon, as some tools write it
    try:
        if isinstance(seg, list):
            polys = [p for p in seg if isinstance(p, list) and len(p) >= 6]
            if not polys or any(len(p) % 2 for p in polys):
                raise ValueError('polygons need >= 3 (x, y) points')
            rles = mask_utils.frPyObjects(
                [[float(v) for v in p] for p in polys], h, w)
            rle = mask_utils.merge(rles)
        elif isinstance(seg, dict) and 'counts' in seg:
            size = [int(v) for v in seg.get('size', [])]
            if size != [h, w]:
                raise ConversionError(
                    where, f'RLE size {size} (HxW) differs from image size '
                    f'[{h}, {w}]')
            if isinstance(seg['counts'], list):
                rle = mask_utils.frPyObjects(seg, h, w)
            else:
                c = seg['counts']
                rle = {'size': size,
                       'counts': c.encode('ascii') if isinstance(c, str)
                       else c}
        else:
            raise ValueError(f'unsupported segmentation {type(seg).__name__}')
        return mask_utils.decode(rle).astype(bool)
    except ConversionError:
        raise
    except Exception as e:  # noqa: BLE001  pycocotools raises many types
        raise ConversionError(where, f'bad segmentation ({e})') from None


@register_converter('coco')
class CocoJsonConverter(GenericConverter):
    """COCO detection / instance JSON (see module docstring)."""

    default_normal_categories: Sequence[str] = ()

    def __init__(self, root, config: Optional[Dict[str, Any]] = None):
        config = dict(config or {})
        if 'image_dir' not in config:
            config['image_dir'] = 'images' if (Path(root) /
                                               'images').is_dir() else '.'
        super().__init__(root, config)

    # ---- annotation files -------------------------------------------------
    def _ann_files(self) -> List[Tuple[Optional[str], Path]]:
        spec = self.config.get('ann_file')
        if isinstance(spec, dict):
            return [(SPLIT_ALIASES.get(str(k).lower(), str(k)),
                     self.root / str(v)) for k, v in sorted(spec.items())]
        if isinstance(spec, (list, tuple)):
            paths = [self.root / str(p) for p in spec]
        elif spec:
            paths = [self.root / str(spec)]
        else:
            cands = [self.root / 'annotations.json']
            cands += sorted((self.root / 'annotations').glob('*.json'))
            cands += sorted(self.root.glob('*/_annotations.coco.json'))
            paths = [p for p in cands if p.is_file()]
            if not paths:
                raise ConversionError(
                    self.root, 'no COCO annotation file found (looked for '
                    'annotations.json, annotations/*.json and '
                    '*/_annotations.coco.json); set "ann_file" in the '
                    'config')
        if len(paths) == 1:  # one file: seeded split
            return [(None, paths[0])]
        out = []
        for p in paths:
            sp = split_from_name(p)
            if sp is None:
                raise ConversionError(
                    p, 'several annotation files but no split name (train/'
                    'val/test) in this one; give "ann_file" as {split: '
                    'file} in the config')
            out.append((sp, p))
        if len({s for s, _ in out}) != len(out):
            raise ConversionError(self.root, 'two annotation files for one '
                                  f'split: {[str(p) for _, p in out]}')
        return out

    def _normal_ids(self, cats: List[Dict[str, Any]]) -> set:
        wanted = self.config.get('normal_categories',
                                 list(self.default_normal_categories))
        wanted = {str(v) for v in (wanted or [])}
        return {c['id'] for c in cats
                if str(c.get('name')) in wanted or str(c['id']) in wanted}

    # ---- scan --------------------------------------------------------------
    def scan(self) -> List[Dict[str, Any]]:
        files = self._ann_files()
        self.native_splits = all(s is not None for s, _ in files)
        items: List[Dict[str, Any]] = []
        cat_names: Dict[int, str] = {}
        normal_ids: set = set()
        seen: Dict[str, str] = {}
        for split, path in files:
            d = read_coco_json(path)
            cats = d.get('categories', [])
            for c in cats:
                if not isinstance(c, dict) or 'id' not in c or 'name' not in c:
                    raise ConversionError(path, f'bad category entry {c!r}')
                cid = int(c['id'])
                if cat_names.get(cid, c['name']) != c['name']:
                    raise ConversionError(
                        path, f'category id {cid} is {c["name"]!r} here but '
                        f'{cat_names[cid]!r} in another annotation file')
                cat_names[cid] = str(c['name'])
            normal_ids |= self._normal_ids(cats)
            by_image: Dict[Any, List[Dict[str, Any]]] = {}
            for a in d.get('annotations', []):
                if not isinstance(a, dict) or 'image_id' not in a:
                    raise ConversionError(path, f'bad annotation {a!r:.80}')
                by_image.setdefault(a['image_id'], []).append(a)
            known = set()
            for im in d['images']:
                if not isinstance(im, dict) or 'file_name' not in im \
                        or 'id' not in im:
                    raise ConversionError(path, f'bad image entry {im!r:.80}')
                if im['id'] in known:
                    raise ConversionError(path, f'image id {im["id"]!r} '
                                          'used twice in "images"')
                known.add(im['id'])
                key = (tuple(map(str, self._image_dirs(path))),
                       str(im['file_name']))
                if key in seen:
                    raise ConversionError(
                        path, f'image {key[1]!r} listed twice (also in '
                        f'{seen[key]})')
                seen[key] = str(path)
                items.append({'json': str(path), 'split': split,
                              'image': im,
                              'anns': by_image.get(im['id'], [])})
            orphan = sorted(set(by_image) - known, key=str)
            if orphan:
                raise ConversionError(
                    path, f'{len(orphan)} annotation image_id(s) not in '
                    f'"images" (first: {orphan[0]!r})')
        if not items:
            raise ConversionError(files[0][1], 'no images listed')
        # a misspelt normal category must not silently keep its boxes
        missing_normal = set(map(str, self.config.get(
            'normal_categories') or [])) - set(cat_names.values()) - \
            {str(i) for i in cat_names}
        if missing_normal:
            raise ConversionError(
                files[0][1], f'normal_categories {sorted(missing_normal)} '
                f'not among the categories {sorted(cat_names.values())}')
        self._cat_names = cat_names
        self._normal_cat_ids = normal_ids
        if self.config.get('classes') is None:
            self.classes = tuple(cat_names[i] for i in sorted(cat_names)
                                 if i not in normal_ids)
            if len(set(self.classes)) != len(self.classes):
                raise ConversionError(files[0][1], 'two categories share a '
                                      'name; set "classes" in the config')
        items.sort(key=lambda it: str(it['image']['file_name']))
        return items

    def item_path(self, item) -> str:
        return f'{item["json"]}: image {item["image"]["file_name"]}'

    # ---- load --------------------------------------------------------------
    def _image_dirs(self, json_path: Path) -> List[Path]:
        """Folders the ``file_name``\\ s of one annotation file are relative
        to (default: ``image_dir``)."""
        return [self.image_dir]

    def _find_image(self, item) -> Path:
        fname = str(item['image']['file_name']).replace('\\', '/')
        split = item['split']
        cands = []
        dirs = self._image_dirs(Path(item['json']))
        for d in dirs:
            cands.append(d / fname)
            if split:
                cands += [d / split / fname, d / f'{split}2017' / fname]
        cands.append(Path(item['json']).parent / fname)
        for c in cands:
            if c.is_file():
                return c
        raise ConversionError(item['json'], f'image {fname!r} not found '
                              f'(looked in {", ".join(map(str, dirs))})')

    def load(self, item) -> ImageRecord:
        jpath = item['json']
        im = item['image']
        path = self._find_image(item)
        try:
            rel = path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            raise ConversionError(path, 'image is outside --root') from None
        h, w = probe_image(path)
        jw, jh = im.get('width'), im.get('height')
        if jw and jh and (int(jw), int(jh)) != (w, h):
            raise ConversionError(jpath, f'image {im["file_name"]!r}: JSON '
                                  f'size {jw}x{jh} differs from the file '
                                  f'{w}x{h}')
        inst: List[Instance] = []
        marked_normal = False
        for k, a in enumerate(item['anns']):
            where = f'{jpath}: image {im["file_name"]!r} annotation {k}'
            cid = a.get('category_id')
            if cid in self._normal_cat_ids:
                marked_normal = True
                continue
            name = self._cat_names.get(cid)
            if name is None:
                raise ConversionError(jpath, f'image {im["file_name"]!r}: '
                                      f'unknown category_id {cid!r}')
            if name not in self.classes:
                raise ConversionError(
                    jpath, f'image {im["file_name"]!r}: category {name!r} '
                    f'is not in "classes" {list(self.classes)}')
            attrs = {'crowd': True} if a.get('iscrowd') else {}
            mask = coco_segmentation_mask(a.get('segmentation'), (h, w),
                                          where)
            if mask is not None:
                if not mask.any():
                    raise ConversionError(where, 'empty segmentation')
                inst.append(Instance(name, mask=mask, attributes=attrs,
                                     source_path=where))
                continue
            bbox = a.get('bbox')
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise ConversionError(where, 'neither segmentation nor a '
                                      '4-value bbox')
            inst.append(Instance(name, bbox=[float(v) for v in bbox],
                                 attributes=attrs, source_path=where))
        if not inst and not marked_normal and \
                self.config.get('unannotated', 'normal') == 'error':
            raise ConversionError(jpath, f'image {im["file_name"]!r} has no '
                                  'annotation')
        return ImageRecord(rel, w, h, instances=inst, is_normal=not inst,
                           split=item['split'],
                           attributes={'coco_id': im['id']}
                           if isinstance(im['id'], (int, str)) else {})
