# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Generic converters driven by a small config - a new factory dataset
needs a config, not code.

``python data_converters/convert.py FORMAT --root DIR --out-dir OUT
--config my_data.yaml`` with FORMAT one of ``folder``, ``voc``, ``yolo``,
``yolo_seg``, ``labelme``, ``coco`` (or ``generic`` with ``format:`` in the
config).

Common config keys (all optional unless said)::

    source: my_factory        # provenance name written to every image
    license: internal         # licence / terms
    reference: ''             # citation
    classes: [scratch, dent]  # source class names -> ids 1..K (YOLO:
                              # required, index = YOLO class id); else
                              # discovered (sorted) from the data
    product: gear             # taxonomy defaults for captions/categories
    material: steel
    domain: mechanical parts
    taxonomy:                 # per-class overrides (defect_type/product/...)
      dent: {defect_type: dent}
    image_dir: images         # folder holding the images (default: root)

A first path component ``train``/``val``/``valid``/``test`` under
``image_dir`` (for every image) gives native splits; otherwise a seeded
stratified split is drawn.

``folder`` - folder per class, masks optional::

    root/<image_dir>/[<split>/]<class>/<name>.png
    root/<mask_dir>/[<split>/]<class>/<stem><mask_suffix>   (mask_dir set)
    root/<image_dir>/[<split>/]<class>/<stem><mask_suffix>  (mask_suffix
                                                           only: beside it)

  keys: ``normal_classes`` (default ``[good, normal, ok, free]``: defect-
  free folders), ``mask_dir``, ``mask_suffix`` (default ``.png``),
  ``mask_threshold`` (127), ``empty_mask`` (``error`` | ``image_label``:
  keep the image-level label without an instance). Without masks a class
  folder gives image-level labels only (classification).
  Refused (``ConversionError`` naming the path and the likely fix): a
  class folder named like a layout folder (``images``, ``masks``,
  ``labels``, ``ground_truth`` ...) unless ``classes`` lists it - the sign
  of an ``images/`` + ``masks/`` tree read without a config; mask-named
  files (``*_mask``, ``*_gt``, ``*_label``) among the images without
  ``mask_suffix``; binary (0/255-only) images, i.e. a mask tree read as
  images (``binary_images: true`` accepts binarised images); empty class
  folders; no images at all; a mask whose size differs from its image. A
  ``mask_dir`` inside ``image_dir`` is left out of the image listing.

``coco`` - COCO detection / instance JSON: see
  ``data_converters/coco_json.py``.

``voc`` - Pascal VOC: ``root/<ann_dir=Annotations>/*.xml`` and
  ``root/<image_dir=JPEGImages>/<filename>``; ``ImageSets/Main/<split>.txt``
  give native splits. An XML without objects is a normal image.

``yolo`` / ``yolo_seg`` - ``root/<image_dir=images>/[split/]<name>.jpg`` and
  ``root/<label_dir=labels>/[split/]<name>.txt`` with rows ``c cx cy w h``
  (normalised) or ``c x1 y1 x2 y2 ...`` (normalised polygon, rasterised to
  a mask). A missing or empty label file is a normal (background) image
  unless ``missing_label: error``.

``labelme`` - ``root/**/<name>.json`` (LabelMe) with ``imagePath`` relative
  to the JSON; polygons/circles become masks, rectangles boxes. A JSON
  without shapes is a normal image.

Licence of this code: Apache-2.0; the data keep their own licence
(``license`` key).
"""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from data_converters.base import (IMAGE_EXTS, BaseConverter,
                                  ConversionError, ImageRecord, Instance,
                                  parse_voc_xml, probe_image, read_image,
                                  read_mask, register_converter)

#: Folder names that are layout, not defect classes (refused as classes
#: unless the config lists them in ``classes``).
LAYOUT_FOLDERS = frozenset({
    'images', 'image', 'imgs', 'img', 'masks', 'mask', 'labels', 'label',
    'ground_truth', 'groundtruth', 'gt', 'annotations', 'annotation'})
#: File-name endings of masks (``000_mask.png``, ``Part0_label.bmp``).
MASK_STEM_TAILS = ('_mask', '-mask', '_gt', '_label', '_labels')

SPLIT_ALIASES = {'train': 'train', 'val': 'val', 'valid': 'val',
                 'validation': 'val', 'test': 'test'}


class GenericConverter(BaseConverter):
    """Shared config handling of the generic converters."""
    license = 'see config'

    def __init__(self, root, config: Optional[Dict[str, Any]] = None):
        super().__init__(root, config)
        cfg = self.config
        self.name = str(cfg.get('source', self.name or 'generic'))
        self.license = str(cfg.get('license', 'unknown'))
        self.reference = str(cfg.get('reference', ''))
        if cfg.get('classes') is not None:
            self.classes = tuple(str(c) for c in cfg['classes'])
        self.image_dir = self.root / str(cfg.get('image_dir', '.'))

    # taxonomy: source defaults, then config defaults, then per-class
    def _apply(self, meta: Dict[str, Any], name: Optional[str]):
        from imdd_mm.vocab import root_causes
        meta = dict(meta)
        for k in ('product', 'material', 'domain'):
            if self.config.get(k):
                meta[k] = self.config[k]
        over = (self.config.get('taxonomy') or {}).get(name) or {}
        for k in ('product', 'material', 'domain'):
            if over.get(k):
                meta[k] = over[k]
        if over.get('defect_type'):
            from imdd_mm.vocab import map_category
            d = map_category(None, over['defect_type'])
            meta.update(defect_type=d['defect_type'], imdd_id=d['imdd_id'],
                        group=d['group'],
                        root_causes=root_causes(d['defect_type']))
        return meta

    def category_meta(self, name: str) -> Dict[str, Any]:
        from imdd_mm.vocab import map_category
        return self._apply(map_category(self.name, name), name)

    def source_meta(self) -> Dict[str, Any]:
        from imdd_mm.vocab import map_category
        return self._apply(map_category(self.name, None), None)

    # helpers
    def _list_images(self, base: Path) -> List[str]:
        if not base.is_dir():
            raise ConversionError(base, 'image folder not found')
        suffix = self.config.get('mask_suffix') if self.config.get(
            'mask_dir') is None else None
        out = []
        for p in sorted(base.rglob('*')):
            if not p.is_file() or p.suffix.lower() not in IMAGE_EXTS:
                continue
            if suffix and p.name.endswith(suffix) and \
                    suffix != p.suffix:  # a mask beside its image
                continue
            out.append(p.relative_to(base).as_posix())
        return out

    def _native_split(self, rel_under_image_dir: Sequence[str]) -> bool:
        firsts = {r.split('/', 1)[0].lower() for r in rel_under_image_dir}
        ok = bool(rel_under_image_dir) and all(
            '/' in r for r in rel_under_image_dir) and firsts <= set(
                SPLIT_ALIASES)
        self.native_splits = ok
        return ok

    def _rel_root(self, rel_img: str) -> str:
        """image_dir-relative path -> --root-relative path."""
        return (self.image_dir / rel_img).relative_to(self.root).as_posix() \
            if self.image_dir != self.root else rel_img

    def _check_classes(self, found: Sequence[str], where) -> None:
        if self.config.get('classes') is None:
            self.classes = tuple(sorted(set(found)))
        else:
            unknown = sorted(set(found) - set(self.classes))
            if unknown:
                raise ConversionError(where, f'unknown class name(s) '
                                      f'{unknown} (known: {self.classes})')


@register_converter('folder')
class FolderConverter(GenericConverter):
    """Folder per class, with a mask folder or a mask suffix (optional)."""

    def scan(self) -> List[str]:
        rels = self._list_images(self.image_dir)
        rels = self._drop_mask_tree(rels)
        if not rels:
            raise ConversionError(self.image_dir, 'no images found (image '
                                  f'extensions: {", ".join(IMAGE_EXTS)})')
        split = self._native_split(rels)
        normal = {str(c).lower() for c in self.config.get(
            'normal_classes', ('good', 'normal', 'ok', 'free'))}
        depth = 2 if split else 1
        found = []
        for r in rels:
            parts = r.split('/')
            if len(parts) <= depth:
                raise ConversionError(self.image_dir / r, 'image outside a '
                                      'class folder')
            c = parts[depth - 1]
            if c.lower() not in normal:
                found.append(c)
        self._check_layout(rels, depth, set(found))
        if self.config.get('classes') is None:
            self.classes = tuple(sorted(set(found)))
        self._normal = normal
        return rels

    # ---- refusals of trees that are not what the config says -----------
    def _drop_mask_tree(self, rels: List[str]) -> List[str]:
        """Leave the configured ``mask_dir`` out of the image listing when
        it lies inside ``image_dir``."""
        mask_dir = self.config.get('mask_dir')
        if mask_dir is None:
            return rels
        if not (self.root / str(mask_dir)).is_dir():
            raise ConversionError(self.root / str(mask_dir), 'mask_dir not '
                                  'found (it is relative to --root)')
        try:
            under = (self.root / str(mask_dir)).resolve().relative_to(
                self.image_dir.resolve()).as_posix()
        except ValueError:
            return rels
        if under == '.':
            raise ConversionError(self.image_dir, 'mask_dir is the image '
                                  'folder itself; use mask_suffix for masks '
                                  'beside their images')
        return [r for r in rels if not r.startswith(under + '/')]

    def _check_layout(self, rels: List[str], depth: int,
                      found: set) -> None:
        """Refuse layouts the config does not describe (see module doc):
        layout folders read as classes, masks read as images, empty class
        folders."""
        where = self.image_dir
        if self.config.get('classes') is None:
            for c in sorted(found):
                if c.lower() in LAYOUT_FOLDERS:
                    raise ConversionError(
                        where / c, f'folder {c!r} would become a defect '
                        'class, but it is a layout folder (images/masks/'
                        'labels); describe the tree in a config, e.g. '
                        'dataset.yaml with "image_dir: images" and '
                        '"mask_dir: masks" (see data_converters/examples/'
                        'folder_with_masks.yaml), or list the "classes"')
        suffix = self.config.get('mask_suffix')
        if suffix is None or self.config.get('mask_dir') is not None:
            for r in rels:
                stem = r.rsplit('/', 1)[-1].rsplit('.', 1)[0].lower()
                hit = next((t for t in MASK_STEM_TAILS
                            if stem.endswith(t)), None)
                if hit and not (suffix and r.endswith(suffix)):
                    raise ConversionError(
                        where / r, f'looks like a mask ({hit!r} file name) '
                        'inside an image class folder; set "mask_suffix: '
                        f'{hit}{Path(r).suffix}" for masks beside their '
                        'images, or "mask_dir" for a separate mask tree')
        base = [where / s for s in sorted(
            {r.split('/', 1)[0] for r in rels})] if depth == 2 else [where]
        with_images = {'/'.join(r.split('/')[:depth]) for r in rels}
        for b in base:
            for d in sorted(p for p in b.iterdir() if p.is_dir()
                            and not p.name.startswith('.')):
                rel = d.relative_to(where).as_posix()
                if rel in with_images:
                    continue
                if self.config.get('mask_dir') is not None and (
                        self.root / str(self.config['mask_dir'])).resolve() \
                        == d.resolve():
                    continue
                raise ConversionError(
                    d, 'empty class folder (no images with extensions '
                    f'{", ".join(IMAGE_EXTS)}); remove it or add its images')

    def _probe(self, path: Path) -> Tuple[int, int]:
        """(height, width) of a validated image that is not a binary mask
        (only 0 and 255 pixel values: a mask tree read as images)."""
        img = read_image(path, cv2.IMREAD_GRAYSCALE)
        if self.config.get('binary_images', False):
            return int(img.shape[0]), int(img.shape[1])
        if img.size > 64 and img.max() == 255 and img.min() == 0 and \
                not np.count_nonzero((img != 0) & (img != 255)):
            raise ConversionError(
                path, 'binary image (only 0 and 255): this looks like a mask '
                'read as an image; point "image_dir" at the images and '
                '"mask_dir" at the masks (or set "binary_images: true" for '
                'binarised images)')
        return int(img.shape[0]), int(img.shape[1])

    def item_path(self, item) -> str:
        return self._rel_root(item)

    def load(self, rel: str) -> ImageRecord:
        parts = rel.split('/')
        split = SPLIT_ALIASES[parts[0].lower()] if self.native_splits \
            else None
        cls = parts[1] if self.native_splits else parts[0]
        path = self.image_dir / rel
        h, w = self._probe(path)
        file_name = self._rel_root(rel)
        if cls.lower() in self._normal:
            return ImageRecord(file_name, w, h, is_normal=True, split=split)
        if cls not in self.classes:
            raise ConversionError(path, f'unknown class name {cls!r} '
                                  f'(known: {self.classes})')
        mask_dir = self.config.get('mask_dir')
        suffix = self.config.get('mask_suffix')
        if mask_dir is None and suffix is None:  # classification only
            return ImageRecord(file_name, w, h, image_label=cls, split=split)
        stem = rel.rsplit('.', 1)[0]
        suffix = suffix or '.png'
        if mask_dir is not None:
            mpath = self.root / str(mask_dir) / (stem + suffix)
        else:
            mpath = self.image_dir / (stem + suffix)
        if not mpath.is_file():
            raise ConversionError(mpath, 'missing mask')
        try:
            mask = read_mask(mpath, (h, w),
                             int(self.config.get('mask_threshold', 127)))
        except ConversionError as e:
            if 'differs from image size' not in e.reason:
                raise
            raise ConversionError(
                e.path, f'{e.reason} ({path}); is "mask_dir"/"mask_suffix" '
                'pairing each image with its own mask?') from None
        if not mask.any():
            if self.config.get('empty_mask', 'error') == 'image_label':
                return ImageRecord(file_name, w, h, image_label=cls,
                                   split=split,
                                   attributes={'empty_mask': True})
            raise ConversionError(mpath, 'empty mask for a defect image')
        return ImageRecord(file_name, w, h, image_label=cls, split=split,
                           instances=[Instance(cls, mask=mask,
                                               source_path=str(mpath))])


@register_converter('voc')
class VOCConverter(GenericConverter):
    """Pascal VOC XML boxes."""

    def __init__(self, root, config=None):
        config = dict(config or {})
        config.setdefault('image_dir', 'JPEGImages')
        super().__init__(root, config)
        self.ann_dir = self.root / str(self.config.get('ann_dir',
                                                       'Annotations'))

    def scan(self) -> List[Tuple[str, str]]:
        if not self.ann_dir.is_dir():
            raise ConversionError(self.ann_dir, 'annotation folder not '
                                  'found')
        xmls = sorted(p for p in self.ann_dir.rglob('*.xml'))
        found = []
        items = []
        for x in xmls:
            items.append(x.relative_to(self.root).as_posix())
            try:
                _, objs = parse_voc_xml(x)
            except ConversionError:
                continue  # raised (or skipped) again by load()
            found.extend(o[0] for o in objs)
        self._check_classes(found, self.ann_dir)
        self._splits: Dict[str, str] = {}
        sets = self.root / 'ImageSets' / 'Main'
        for name in ('train', 'val', 'test'):
            f = sets / f'{name}.txt'
            if f.is_file():
                for line in f.read_text().split():
                    self._splits.setdefault(line.strip(), name)
        self.native_splits = bool(self._splits)
        return items

    def load(self, xml_rel: str) -> ImageRecord:
        import xml.etree.ElementTree as ET
        xml_path = self.root / xml_rel
        (xw, xh), objs = parse_voc_xml(xml_path, set(self.classes))
        fname = (ET.parse(str(xml_path)).getroot().findtext('filename')
                 or '').strip()
        stem = Path(xml_rel).stem
        cand = [self.image_dir / fname] if fname else []
        cand += [self.image_dir / (stem + e) for e in IMAGE_EXTS]
        img_path = next((c for c in cand if c.is_file()), None)
        if img_path is None:
            raise ConversionError(xml_path, f'image {fname or stem} not '
                                  f'found in {self.image_dir}')
        h, w = probe_image(img_path)
        if (xw, xh) != (0, 0) and (xw, xh) != (w, h):
            raise ConversionError(xml_path, f'XML size {xw}x{xh} differs '
                                  f'from image size {w}x{h}')
        split = None
        if self.native_splits:
            split = self._splits.get(stem)
            if split is None:
                raise ConversionError(xml_path, 'not listed in any '
                                      'ImageSets/Main/<split>.txt')
        rel = img_path.relative_to(self.root).as_posix()
        inst = [Instance(n, bbox=b, attributes=a, source_path=str(xml_path))
                for n, b, a in objs]
        return ImageRecord(rel, w, h, instances=inst, is_normal=not inst,
                           split=split)


@register_converter('yolo')
class YOLOConverter(GenericConverter):
    """YOLO txt boxes (``c cx cy w h``, normalised)."""
    segmentation = False

    def __init__(self, root, config=None):
        config = dict(config or {})
        config.setdefault('image_dir', 'images')
        super().__init__(root, config)
        if not self.classes:
            raise ConversionError(root, f'{self.name}: config "classes" '
                                  '(YOLO id order) is required')
        self.label_dir = self.root / str(self.config.get('label_dir',
                                                         'labels'))

    def scan(self) -> List[str]:
        rels = self._list_images(self.image_dir)
        self._native_split(rels)
        return rels

    def item_path(self, item) -> str:
        return self._rel_root(item)

    def _parse(self, path: Path, w: int, h: int) -> List[Instance]:
        try:
            text = path.read_text(encoding='utf-8')
        except OSError as e:
            raise ConversionError(path, f'unreadable label file ({e})') \
                from None
        inst = []
        for k, line in enumerate(text.splitlines()):
            vals = line.split()
            if not vals:
                continue
            try:
                cid = int(float(vals[0]))
                nums = [float(v) for v in vals[1:]]
            except ValueError:
                raise ConversionError(path, f'line {k + 1}: non-numeric '
                                      'value') from None
            if not 0 <= cid < len(self.classes):
                raise ConversionError(path, f'line {k + 1}: unknown class '
                                      f'id {cid} ({len(self.classes)} '
                                      'classes)')
            name = self.classes[cid]
            if self.segmentation and len(nums) >= 6 and len(nums) % 2 == 0:
                pts = np.array(nums, np.float64).reshape(-1, 2) * [w, h]
                mask = np.zeros((h, w), np.uint8)
                cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
                if not mask.any():
                    raise ConversionError(path, f'line {k + 1}: empty '
                                          'polygon')
                inst.append(Instance(name, mask=mask.astype(bool),
                                     source_path=str(path)))
            elif len(nums) == 4:
                cx, cy, bw, bh = nums
                inst.append(Instance(name, bbox=[(cx - bw / 2) * w,
                                                 (cy - bh / 2) * h, bw * w,
                                                 bh * h],
                                     source_path=str(path)))
            else:
                raise ConversionError(path, f'line {k + 1}: expected 4 box '
                                      'values' + (' or a polygon'
                                                  if self.segmentation
                                                  else ''))
        return inst

    def load(self, rel: str) -> ImageRecord:
        path = self.image_dir / rel
        h, w = probe_image(path)
        split = SPLIT_ALIASES[rel.split('/', 1)[0].lower()] \
            if self.native_splits else None
        lab = self.label_dir / (rel.rsplit('.', 1)[0] + '.txt')
        if not lab.is_file():
            if self.config.get('missing_label', 'normal') == 'error':
                raise ConversionError(lab, 'missing label file')
            inst = []
        else:
            inst = self._parse(lab, w, h)
        return ImageRecord(self._rel_root(rel), w, h, instances=inst,
                           is_normal=not inst, split=split)


@register_converter('yolo_seg')
class YOLOSegConverter(YOLOConverter):
    """YOLO segmentation txt (``c x1 y1 x2 y2 ...``, normalised)."""
    segmentation = True


@register_converter('labelme')
class LabelMeConverter(GenericConverter):
    """LabelMe JSON (polygons, rectangles, circles)."""

    def _read(self, path: Path) -> Dict[str, Any]:
        try:
            with open(path, encoding='utf-8') as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            raise ConversionError(path, f'cannot read LabelMe JSON ({e})') \
                from None

    def scan(self) -> List[str]:
        base = self.image_dir
        if not base.is_dir():
            raise ConversionError(base, 'folder not found')
        items, found = [], []
        for p in sorted(base.rglob('*.json')):
            try:
                d = self._read(p)
            except ConversionError:
                d = {'shapes': []}  # raised (or skipped) again by load()
            if not isinstance(d, dict) or 'shapes' not in d:
                continue  # not a LabelMe file
            found.extend(str(s.get('label', '')) for s in d['shapes']
                         if isinstance(s, dict))
            items.append(p.relative_to(self.root).as_posix())
        self._check_classes(found, base)
        under = [(self.root / i).relative_to(base).as_posix()
                 for i in items]
        self._native_split(under)
        return items

    def load(self, json_rel: str) -> ImageRecord:
        jpath = self.root / json_rel
        d = self._read(jpath)
        ip = d.get('imagePath')
        if not ip:
            raise ConversionError(jpath, 'no imagePath')
        img_path = (jpath.parent / ip.replace('\\', '/')).resolve()
        try:
            rel = img_path.relative_to(self.root.resolve()).as_posix()
        except ValueError:
            raise ConversionError(jpath, f'imagePath {ip!r} is outside '
                                  '--root') from None
        h, w = probe_image(img_path)
        jw, jh = d.get('imageWidth'), d.get('imageHeight')
        if jw and jh and (int(jw), int(jh)) != (w, h):
            raise ConversionError(jpath, f'JSON size {jw}x{jh} differs from '
                                  f'image size {w}x{h}')
        inst = []
        for k, s in enumerate(d.get('shapes', [])):
            label = str(s.get('label', ''))
            if label not in self.classes:
                raise ConversionError(jpath, f'shape {k}: unknown class '
                                      f'name {label!r}')
            pts = np.asarray(s.get('points', []), np.float64).reshape(-1, 2)
            st = s.get('shape_type') or 'polygon'
            if st == 'rectangle' and len(pts) == 2:
                x0, y0 = pts.min(0)
                x1, y1 = pts.max(0)
                inst.append(Instance(label, bbox=[x0, y0, x1 - x0, y1 - y0],
                                     source_path=str(jpath)))
                continue
            mask = np.zeros((h, w), np.uint8)
            if st == 'circle' and len(pts) == 2:
                r = float(np.linalg.norm(pts[1] - pts[0]))
                cv2.circle(mask, tuple(int(round(v)) for v in pts[0]),
                           max(1, int(round(r))), 1, -1)
            elif st == 'polygon' and len(pts) >= 3:
                cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
            else:
                raise ConversionError(jpath, f'shape {k}: unsupported '
                                      f'shape_type {st!r} with {len(pts)} '
                                      'points')
            if not mask.any():
                raise ConversionError(jpath, f'shape {k}: empty region')
            inst.append(Instance(label, mask=mask.astype(bool),
                                 source_path=str(jpath)))
        split = None
        if self.native_splits:
            under = jpath.relative_to(self.image_dir).as_posix()
            split = SPLIT_ALIASES[under.split('/', 1)[0].lower()]
        return ImageRecord(rel, w, h, instances=inst, is_normal=not inst,
                           split=split)


_FORMATS = {'folder': FolderConverter, 'voc': VOCConverter,
            'yolo': YOLOConverter, 'yolo_seg': YOLOSegConverter,
            'labelme': LabelMeConverter}


@register_converter('generic')
class AnyFormatConverter(BaseConverter):
    """``generic``: dispatch on ``config['format']``."""

    def __new__(cls, root, config=None):
        fmt = (config or {}).get('format')
        if fmt == 'coco':  # its own module (imports this one)
            from data_converters.coco_json import CocoJsonConverter
            return CocoJsonConverter(root, config)
        if fmt not in _FORMATS:
            raise ConversionError(root, f'generic converter needs config '
                                  f'"format" in {sorted([*_FORMATS, "coco"])}'
                                  f', got '
                                  f'{fmt!r}')
        return _FORMATS[fmt](root, config)
