# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Converter framework: source dataset -> COCO instances + captions.

Every converter turns one dataset, read in the layout its authors publish,
into ``OUT/annotations/<split>.json`` (COCO), ``OUT/captions.jsonl``,
``OUT/categories.json`` and ``OUT/skipped.json`` (see docs/DESIGN.md,
"Converters' output"). A converter only *reads* the source: it lists the
images (:meth:`BaseConverter.scan`, cheap, main process) and turns one listed
item into an :class:`ImageRecord` (:meth:`BaseConverter.load`, heavy, runs in
worker processes). Everything else - validation, RLE encoding, boxes, areas,
taxonomy fields, captions and nouns, ids, seeded splits, parallelism, the
``--on-error`` policy and atomic, byte-identical writing - is done here.

How to add a converter (one module in ``data_converters/sources/``, listed
in its ``__init__``; ``convert.py`` imports every module of the package, so
nothing else needs editing)::

    # data_converters/sources/my_source.py
    from data_converters.base import (BaseConverter, ConversionError,
                                      ImageRecord, Instance, probe_image,
                                      read_mask, register_converter)

    @register_converter('my_source')          # the SOURCE name on the CLI
    class MySourceConverter(BaseConverter):
        \"\"\"Expected input tree, licence and reference go here.\"\"\"
        license = 'CC BY-NC-SA 4.0'
        reference = 'Author et al., Title, Venue 2020'
        classes = ('crack', 'scratch')       # source names, ids 1..K in order

        def scan(self):                      # -> picklable, sorted items
            return sorted(p.relative_to(self.root).as_posix()
                          for p in self.root.glob('*/img/*.png'))

        def load(self, rel):                 # -> ImageRecord (worker side)
            cls = rel.split('/')[0]
            h, w = probe_image(self.root / rel)         # validates the file
            if cls == 'good':                           # normal: no instances
                return ImageRecord(rel, w, h, is_normal=True)
            mask_path = self.root / rel.replace('/img/', '/mask/')
            mask = read_mask(mask_path, (h, w))         # bool, size checked
            return ImageRecord(
                rel, w, h, image_label=cls,
                instances=[Instance(cls, mask=mask,
                                    source_path=str(mask_path))])

Map every name in ``classes`` into the unified taxonomy by adding the source
to ``imdd_mm/vocab/data/source_categories.json`` (or override
:meth:`BaseConverter.category_meta`). Raise :class:`ConversionError(path,
reason)` for bad input; :func:`probe_image` (size + full validation),
:func:`read_image` (pixels) and :func:`read_mask` already do.
Set ``ImageRecord.split`` when the source has native splits (then set
``native_splits = True``); otherwise a seeded stratified split is drawn.

Record conventions:

* ``file_name`` is relative to ``--root`` (POSIX separators); images are never
  copied. No output file records where ``--root`` was: the output is
  relocatable, and the dataset root is given at train time (``data_root`` /
  ``data_prefix=dict(img=...)`` of the datasets, ``--image-root`` of the
  corpus builder).
* A defect-free image has ``is_normal=True`` and no instances - never a
  "good" class. ``image_label`` is a source class name for images whose class
  is known at image level (folder-per-class, classification-only sources).
* An :class:`Instance` has a boolean pixel ``mask`` (H, W) **or** a ``bbox``
  ``(x, y, w, h)`` in pixels. Mask instances give RLE segmentations with
  ``area``/``bbox`` computed from the RLE; box-only instances give a
  rectangle polygon and ``attributes['box_only'] = True``.
* An empty mask is an error (``ConversionError``) unless the converter
  decides otherwise (e.g. Magnetic Tile keeps the image-level label).

Output details beyond docs/DESIGN.md: COCO images also carry ``product``,
``material`` (caption subject) and ``attributes`` (``ImageRecord.attributes``);
annotations carry ``attributes`` (e.g. ``difficult``, ``box_only``).
Image ids are 1..N over all splits in ``file_name`` order, annotation ids
1..M in image order, so splits of one conversion never share ids.
"""
import gc
import json
import math
import multiprocessing as mp
import os
import os.path as osp
import random
import tempfile
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from pycocotools import mask as mask_utils

__all__ = [
    'ConversionError', 'Instance', 'ImageRecord', 'BaseConverter',
    'CONVERTERS', 'register_converter', 'get_converter', 'list_converters',
    'read_image', 'probe_image', 'read_mask', 'mask_to_rle', 'rle_to_mask',
    'rle_area', 'rle_bbox', 'box_to_polygon', 'stratified_split',
    'atomic_write_text', 'atomic_write_json', 'dumps_json', 'run_conversion',
    'parse_voc_xml',
    'import_all_converters', 'IMAGE_EXTS', 'SPLIT_ORDER', 'DEFAULT_RATIOS'
]

PathLike = Union[str, os.PathLike]

#: Default train/val/test ratios of the seeded stratified split.
DEFAULT_RATIOS: Tuple[float, float, float] = (0.7, 0.1, 0.2)
SPLIT_ORDER = ('train', 'val', 'test')
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


# --------------------------------------------------------------------------
# errors and records
# --------------------------------------------------------------------------
class ConversionError(Exception):
    """Bad input. ``str(err)`` is ``'<path>: <reason>'``.

    Args:
        path: The offending file (image, mask, annotation or config).
        reason: What is wrong with it, e.g. ``'truncated JPEG'``.
    """

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = str(reason)
        super().__init__(f'{self.path}: {self.reason}')

    def __reduce__(self):  # picklable across worker processes
        return (self.__class__, (self.path, self.reason))


@dataclass
class Instance:
    """One annotated defect region of an image.

    Args:
        category: Source class name (must be in the converter's ``classes``).
        mask: Boolean pixel mask (H, W), or None for a box-only instance.
        bbox: ``(x, y, w, h)`` box in pixels when there is no mask.
        attributes: Extra per-instance fields (e.g. ``difficult``).
        source_path: File the annotation came from (for error messages).
    """
    category: str
    mask: Optional[np.ndarray] = None
    bbox: Optional[Sequence[float]] = None
    attributes: Dict[str, Any] = field(default_factory=dict)
    source_path: Optional[str] = None


@dataclass
class ImageRecord:
    """Everything a converter knows about one image.

    Args:
        file_name: Path relative to ``--root`` (POSIX).
        width, height: Image size in pixels (from the decoded image).
        instances: Annotated regions; empty for normal or image-level-only.
        image_label: Source class name of the whole image, or None.
        is_normal: True for defect-free images.
        split: Native split name ('train'/'val'/'test'/...) or None.
        product, material: Per-image overrides of the taxonomy entry (used
            in the caption), e.g. ELPV's mono/poly silicon.
        attributes: Extra per-image fields written to the COCO image
            (e.g. ``severity``), JSON-serialisable.
        stratum: Optional key of the seeded stratified split (default: the
            image label, else the first instance's class, else 'normal').
    """
    file_name: str
    width: int
    height: int
    instances: List[Instance] = field(default_factory=list)
    image_label: Optional[str] = None
    is_normal: bool = False
    split: Optional[str] = None
    product: Optional[str] = None
    material: Optional[str] = None
    attributes: Dict[str, Any] = field(default_factory=dict)
    stratum: Optional[str] = None


# --------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------
CONVERTERS: Dict[str, type] = {}


def register_converter(name: str) -> Callable[[type], type]:
    """Class decorator registering a converter under SOURCE ``name``."""

    def _register(cls: type) -> type:
        if name in CONVERTERS and CONVERTERS[name] is not cls:
            raise KeyError(f'converter {name!r} is already registered '
                           f'by {CONVERTERS[name].__module__}')
        cls.name = name
        CONVERTERS[name] = cls
        return cls

    return _register


_NOT_CONVERTERS = ('base', 'convert', 'corpus', 'build_corpus')
_IMPORT_ERRORS: Dict[str, str] = {}


def import_all_converters() -> Dict[str, str]:
    """Import every module/subpackage of ``data_converters`` so that their
    converters register. A module that fails to import does not hide the
    others: its error is returned (module -> message) and reported by
    :func:`get_converter` when the requested SOURCE is missing."""
    import importlib
    import pkgutil
    pkg_dir = osp.dirname(osp.abspath(__file__))
    for info in sorted(pkgutil.iter_modules([pkg_dir]), key=lambda i: i.name):
        if info.name in _NOT_CONVERTERS or info.name.startswith('_'):
            continue
        mod = f'data_converters.{info.name}'
        try:
            importlib.import_module(mod)
        except Exception as e:  # noqa: BLE001  reported by get_converter
            _IMPORT_ERRORS[mod] = f'{type(e).__name__}: {e}'
    return dict(_IMPORT_ERRORS)


def get_converter(name: str) -> type:
    """The converter class registered as ``name``.

    Tries ``data_converters.<name>`` and ``data_converters.sources.<name>``
    first, then imports all converter modules."""
    import importlib
    if name not in CONVERTERS and name.isidentifier():
        for mod in (f'data_converters.{name}',
                    f'data_converters.sources.{name}'):
            try:
                importlib.import_module(mod)
            except ModuleNotFoundError as e:
                if e.name not in (mod, 'data_converters.sources'):
                    _IMPORT_ERRORS[mod] = f'{type(e).__name__}: {e}'
            except Exception as e:  # noqa: BLE001  reported below
                _IMPORT_ERRORS[mod] = f'{type(e).__name__}: {e}'
            if name in CONVERTERS:
                break
    if name not in CONVERTERS:
        import_all_converters()
    if name not in CONVERTERS:
        extra = ''.join(f'\n  (import of {m} failed: {e})'
                        for m, e in sorted(_IMPORT_ERRORS.items()))
        raise KeyError(f'unknown converter {name!r}; available: '
                       f'{", ".join(sorted(CONVERTERS))}{extra}')
    return CONVERTERS[name]


def list_converters() -> List[str]:
    import_all_converters()
    return sorted(CONVERTERS)


# --------------------------------------------------------------------------
# file helpers
# --------------------------------------------------------------------------
def _read_bytes(path: PathLike) -> bytes:
    try:
        with open(path, 'rb') as f:
            return f.read()
    except FileNotFoundError:
        raise ConversionError(path, 'file not found') from None
    except OSError as e:
        raise ConversionError(path, f'unreadable file ({e.strerror or e})') \
            from None


def _check_complete(path: PathLike, data: bytes) -> None:
    """Detect truncated JPEG/PNG files (decoders often accept them)."""
    if len(data) == 0:
        raise ConversionError(path, 'empty file')
    if data[:2] == b'\xff\xd8':
        if b'\xff\xd9' not in data[-4096:]:
            raise ConversionError(path, 'truncated JPEG (no end-of-image '
                                  'marker)')
    elif data[:8] == b'\x89PNG\r\n\x1a\n':
        if b'IEND' not in data[-64:]:
            raise ConversionError(path, 'truncated PNG (no IEND chunk)')


def read_image(path: PathLike, flags: int = cv2.IMREAD_UNCHANGED
               ) -> np.ndarray:
    """Read and fully decode an image, checking it is complete.

    Raises:
        ConversionError: missing, unreadable, empty, truncated or corrupt.

    Returns:
        np.ndarray: (H, W) or (H, W, C) array as decoded by OpenCV.
    """
    data = _read_bytes(path)
    _check_complete(path, data)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None or img.size == 0:
        raise ConversionError(path, 'corrupt or unsupported image (cannot '
                              'be decoded)')
    return img


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(data: bytes) -> Optional[Tuple[int, int]]:
    """``(height, width)`` from a JPEG's start-of-frame header, or None
    when no well-formed SOF segment is found."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, ) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        seg = (data[i + 2] << 8) | data[i + 3]
        if marker in _SOF_MARKERS:
            if seg < 7 or i + 9 > n:
                return None
            h = (data[i + 5] << 8) | data[i + 6]
            w = (data[i + 7] << 8) | data[i + 8]
            return (h, w) if h and w else None
        if marker == 0xDA:  # scan data before any frame header
            return None
        i += 2 + seg
    return None


def probe_image(path: PathLike) -> Tuple[int, int]:
    """Validate an image file completely and return its ``(height, width)``.

    The cheapest full check: truncation is checked on the raw bytes, then
    the whole file is decoded. A JPEG is decoded to luma at 1/8 scale
    (libjpeg's DCT scaling: every entropy-coded block of the file is still
    Huffman-decoded, only the inverse DCT and colour conversion shrink) and
    its size is read from the frame header, cross-checked against the
    decoded size; other formats are decoded fully. Use it where a converter
    needs the size and a sound file, not the pixels.

    Raises:
        ConversionError: missing, unreadable, empty, truncated or corrupt.
    """
    data = _read_bytes(path)
    _check_complete(path, data)
    buf = np.frombuffer(data, np.uint8)
    if data[:2] == b'\xff\xd8':
        hw = jpeg_size(data)
        img = cv2.imdecode(buf, cv2.IMREAD_REDUCED_GRAYSCALE_8)
        if img is not None and hw is not None and img.shape[:2] == (
                -(-hw[0] // 8), -(-hw[1] // 8)):
            return int(hw[0]), int(hw[1])
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)  # odd header: decode
    else:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ConversionError(path, 'corrupt or unsupported image (cannot '
                              'be decoded)')
    return int(img.shape[0]), int(img.shape[1])


def read_mask(path: PathLike,
              image_hw: Optional[Tuple[int, int]] = None,
              threshold: int = 127) -> np.ndarray:
    """Read a pixel mask as bool (H, W): ``value > threshold``.

    Colour masks count a pixel as foreground where any channel is above the
    threshold. With ``image_hw`` the mask must have the image's size.

    Raises:
        ConversionError: unreadable/corrupt mask, or size mismatch.
    """
    m = read_image(path, cv2.IMREAD_UNCHANGED)
    if m.ndim == 3:
        m = m.max(axis=2)
    if image_hw is not None and tuple(m.shape[:2]) != tuple(image_hw):
        raise ConversionError(
            path, f'mask size {m.shape[1]}x{m.shape[0]} (WxH) differs from '
            f'image size {image_hw[1]}x{image_hw[0]}')
    return m > threshold


def _voc_text(node, tag: str, path) -> str:
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
        with open(path, 'rb') as f:
            root = ET.fromstring(f.read())
    except FileNotFoundError:
        raise ConversionError(path, 'missing annotation file') from None
    except (ET.ParseError, OSError) as e:
        raise ConversionError(path, f'cannot parse XML ({e})') from None
    size = root.find('size')
    wh = (0, 0)
    if size is not None and size.findtext('width'):
        try:
            wh = (int(float(_voc_text(size, 'width', path))),
                  int(float(_voc_text(size, 'height', path))))
        except ValueError:
            raise ConversionError(path, 'invalid <size>') from None
    objs = []
    for k, obj in enumerate(root.findall('object')):
        name = _voc_text(obj, 'name', path)
        if classes is not None and name not in classes:
            raise ConversionError(path, f'unknown class name {name!r} '
                                  f'(object {k})')
        box = obj.find('bndbox')
        if box is None:
            raise ConversionError(path, f'object {k} has no <bndbox>')
        try:
            x0, y0, x1, y1 = (float(_voc_text(box, t, path))
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


def mask_to_rle(mask: np.ndarray) -> Dict[str, Any]:
    """Boolean mask (H, W) -> COCO RLE ``{'size': [H, W], 'counts': str}``."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {'size': [int(rle['size'][0]), int(rle['size'][1])],
            'counts': rle['counts'].decode('ascii')}


def _as_bytes_rle(rle: Dict[str, Any]) -> Dict[str, Any]:
    counts = rle['counts']
    if isinstance(counts, str):
        counts = counts.encode('ascii')
    return {'size': list(rle['size']), 'counts': counts}


def rle_to_mask(rle: Dict[str, Any]) -> np.ndarray:
    """COCO RLE (str or bytes counts) -> boolean mask (H, W)."""
    return mask_utils.decode(_as_bytes_rle(rle)).astype(bool)


def rle_area(rle: Dict[str, Any]) -> int:
    return int(mask_utils.area(_as_bytes_rle(rle)))


def rle_bbox(rle: Dict[str, Any]) -> List[float]:
    """Tight ``[x, y, w, h]`` of the RLE's foreground."""
    return [float(v) for v in mask_utils.toBbox(_as_bytes_rle(rle))]


def box_to_polygon(bbox: Sequence[float]) -> List[List[float]]:
    x, y, w, h = (float(v) for v in bbox)
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def dumps_json(obj: Any) -> str:
    """Deterministic compact JSON (sorted keys, no NaN)."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False,
                      separators=(',', ':'), allow_nan=False)


def _get_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _get_umask()


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file + ``os.replace``."""
    path = os.fspath(path)
    d = osp.dirname(osp.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + osp.basename(path) + '.',
                               suffix='.tmp', dir=d)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8', newline='\n') as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: PathLike, obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj) + '\n')


# --------------------------------------------------------------------------
# split
# --------------------------------------------------------------------------
def stratified_split(keys: Sequence[str],
                     ratios: Sequence[float] = DEFAULT_RATIOS,
                     seed: int = 0,
                     names: Sequence[str] = SPLIT_ORDER,
                     order: Optional[Sequence[str]] = None) -> List[str]:
    """Seeded stratified split.

    Items are grouped by ``keys[i]`` (e.g. the class, ``'normal'`` for
    defect-free images); each group is sorted by ``order[i]`` (default: the
    index), shuffled with a generator seeded by ``(seed, key)`` and cut by
    ``ratios`` (largest-remainder rounding, so every split of a group of
    size >= len(ratios) gets at least one item where its ratio is > 0).
    The result only depends on the multiset of (key, order) pairs and the
    seed, not on the input order or the number of processes.

    Returns:
        list[str]: split name per item.
    """
    if len(ratios) != len(names):
        raise ValueError('ratios and names must have the same length')
    total = float(sum(ratios))
    if total <= 0 or any(r < 0 for r in ratios):
        raise ValueError(f'invalid split ratios {ratios}')
    order = list(range(len(keys))) if order is None else list(order)
    groups: Dict[str, List[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(str(k), []).append(i)
    out: List[Optional[str]] = [None] * len(keys)
    for key in sorted(groups):
        idx = sorted(groups[key], key=lambda i: order[i])
        n = len(idx)
        rng = random.Random(zlib.crc32(f'{seed}:{key}'.encode()))
        rng.shuffle(idx)
        exact = [n * r / total for r in ratios]
        counts = [int(e) for e in exact]
        # at least one per positive-ratio split when the group is big enough
        if n >= len(ratios):
            for j, r in enumerate(ratios):
                if r > 0 and counts[j] == 0:
                    counts[j] = 1
        rest = n - sum(counts)
        rema = sorted(range(len(ratios)),
                      key=lambda j: (-(exact[j] - int(exact[j])), j))
        j = 0
        while rest > 0:
            counts[rema[j % len(rema)]] += 1
            rest -= 1
            j += 1
        while rest < 0:  # took too many for small groups: trim the largest
            jmax = max(range(len(counts)), key=lambda j: counts[j])
            counts[jmax] -= 1
            rest += 1
        start = 0
        for name, c in zip(names, counts):
            for i in idx[start:start + c]:
                out[i] = name
            start += c
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------
# base converter
# --------------------------------------------------------------------------
class BaseConverter:
    """Base class of all converters (see the module docstring).

    Args:
        root: Dataset root as published (``--root``).
        config: Options (generic converters read their layout from it).

    Class attributes to set:
        name (str): set by :func:`register_converter`.
        license (str): the dataset's licence / terms of use.
        reference (str): citation.
        classes (tuple[str]): source class names; category ids are 1..K in
            this order. Converters whose classes come from ``config`` or the
            data set ``self.classes`` in ``__init__``.
        native_splits (bool): True when ``ImageRecord.split`` is set.

    Attribute a converter may fill in :meth:`scan`:
        scan_report (list[dict]): ``{'path', 'reason', 'item'}`` entries of
            inputs the scan left out on purpose (e.g. byte-identical
            duplicates); written to ``OUT/skipped.json`` with the skipped
            items in either ``--on-error`` mode.
    """
    name: str = ''
    license: str = 'unknown'
    reference: str = ''
    classes: Tuple[str, ...] = ()
    native_splits: bool = False
    scan_report: List[Dict[str, str]] = []

    def __init__(self, root: PathLike,
                 config: Optional[Dict[str, Any]] = None) -> None:
        self.root = Path(root)
        self.config = dict(config or {})
        if not self.root.is_dir():
            raise ConversionError(self.root, 'dataset root is not a '
                                  'directory')

    # ---- to implement --------------------------------------------------
    def scan(self) -> List[Any]:
        """List the items to convert (picklable, deterministic order)."""
        raise NotImplementedError

    def load(self, item: Any) -> ImageRecord:
        """Read one item (worker process); raise ConversionError on bad
        input."""
        raise NotImplementedError

    def item_path(self, item: Any) -> str:
        """Path used in the skip report for an item (default: str(item))."""
        return str(item)

    # ---- taxonomy ------------------------------------------------------
    def category_meta(self, name: str) -> Dict[str, Any]:
        """Taxonomy entry of a source class: keys ``domain, material,
        product, defect_type, imdd_id`` (see imdd_mm.vocab.map_category)."""
        from imdd_mm.vocab import map_category
        return map_category(self.name, name)

    def source_meta(self) -> Dict[str, Any]:
        """Default ``domain, product, material`` of the source (captions of
        normal images)."""
        from imdd_mm.vocab import map_category
        return map_category(self.name, None)

    # ---- worker side ----------------------------------------------------
    def convert_item(self, item: Any) -> Dict[str, Any]:
        """load -> validate -> encode -> caption. Returns a picklable dict
        ``{'image': {...}, 'annotations': [...], 'stratum': str}`` without
        ids (assigned later, deterministically)."""
        rec = self.load(item)
        return self.encode_record(rec)

    def encode_record(self, rec: ImageRecord) -> Dict[str, Any]:
        from imdd_mm.vocab import caption_for_image, extract_nouns
        classes = self._class_index()
        where = osp.join(str(self.root), rec.file_name)
        if not rec.width or not rec.height or rec.width <= 0 \
                or rec.height <= 0:
            raise ConversionError(where, f'invalid image size '
                                  f'{rec.width}x{rec.height}')
        for name in [rec.image_label] + [i.category for i in rec.instances]:
            if name is not None and name not in classes:
                raise ConversionError(
                    where, f'unknown class name {name!r} (known: '
                    f'{", ".join(self.classes)})')
        if rec.is_normal and rec.instances:
            raise ConversionError(where, 'normal image with annotations')
        anns: List[Dict[str, Any]] = []
        regions: List[Tuple[str, Any]] = []
        for inst in rec.instances:
            src = inst.source_path or where
            attrs = dict(inst.attributes)
            if inst.mask is not None:
                m = np.asarray(inst.mask, dtype=bool)
                if m.shape != (rec.height, rec.width):
                    raise ConversionError(
                        src, f'mask size {m.shape[1]}x{m.shape[0]} differs '
                        f'from image size {rec.width}x{rec.height}')
                rle = mask_to_rle(m)
                area = rle_area(rle)
                if area == 0:
                    raise ConversionError(src, 'empty mask')
                seg: Any = rle
                bbox = rle_bbox(rle)
                regions.append((inst.category, m))
            elif inst.bbox is not None:
                x, y, w, h = (float(v) for v in inst.bbox)
                x0, y0 = max(0.0, x), max(0.0, y)
                x1 = min(float(rec.width), x + w)
                y1 = min(float(rec.height), y + h)
                finite = all(math.isfinite(v) for v in (x, y, w, h))
                if not finite or x1 <= x0 or y1 <= y0:
                    raise ConversionError(
                        src, 'degenerate or out-of-image box '
                        f'{list(inst.bbox)} for image '
                        f'{rec.width}x{rec.height}')
                bbox = [x0, y0, x1 - x0, y1 - y0]
                seg = box_to_polygon(bbox)
                area = bbox[2] * bbox[3]
                attrs['box_only'] = True
                regions.append((inst.category, tuple(bbox)))
            else:
                raise ConversionError(src, 'instance with neither mask nor '
                                      'box')
            anns.append({
                'category_id': classes[inst.category],
                'segmentation': seg,
                'area': area,
                'bbox': bbox,
                'iscrowd': 0,
                'attributes': attrs,
            })
        meta = self._meta(None)
        label_meta = self._meta(rec.image_label) \
            if rec.image_label is not None else None
        defects = []
        for name in dict.fromkeys([c for c, _ in regions]):
            defects.append((self._meta(name),
                            [r for c, r in regions if c == name]))
        if not defects and label_meta is not None and not rec.is_normal:
            defects.append((label_meta, []))
        first = defects[0][0] if defects else (label_meta or meta)
        product = rec.product or first.get('product') or meta.get('product')
        material = rec.material or first.get('material') \
            or meta.get('material')
        caption = caption_for_image(
            product=product, material=material, defects=defects,
            image_size=(rec.width, rec.height), is_normal=rec.is_normal,
            severity=rec.attributes.get('severity'))
        image = {
            'file_name': rec.file_name,
            'width': int(rec.width),
            'height': int(rec.height),
            'is_normal': bool(rec.is_normal),
            'source': self.name,
            'original_path': rec.file_name,
            'license': self.license,
            'split': rec.split,
            'image_label': classes[rec.image_label]
            if rec.image_label is not None else None,
            'caption': caption,
            'caption_nouns': extract_nouns(caption),
            'product': product,
            'material': material,
            'attributes': dict(rec.attributes),
        }
        if rec.stratum is not None:
            stratum = str(rec.stratum)
        elif rec.is_normal:
            stratum = 'normal'
        elif rec.image_label is not None:
            stratum = rec.image_label
        elif rec.instances:
            stratum = rec.instances[0].category
        else:
            stratum = 'unlabelled'
        return {'image': image, 'annotations': anns, 'stratum': stratum}

    def _meta(self, name: Optional[str]) -> Dict[str, Any]:
        """Cached :meth:`category_meta` (:meth:`source_meta` for None)."""
        cache = self.__dict__.setdefault('_meta_cache', {})
        if name not in cache:
            cache[name] = self.source_meta() if name is None \
                else self.category_meta(name)
        return cache[name]

    def _class_index(self) -> Dict[str, int]:
        key = tuple(self.classes)
        cached = self.__dict__.get('_class_index_cache')
        if cached is not None and cached[0] == key:
            return cached[1]
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f'{self.name}: duplicate class names')
        index = {c: i + 1 for i, c in enumerate(self.classes)}
        self.__dict__['_class_index_cache'] = (key, index)
        return index

    def categories(self) -> List[Dict[str, Any]]:
        """COCO categories with taxonomy fields (ids 1..K)."""
        cats = []
        for i, c in enumerate(self.classes):
            m = self.category_meta(c)
            cats.append({
                'id': i + 1,
                'name': c,
                'supercategory': m.get('product') or self.name,
                'domain': m.get('domain'),
                'material': m.get('material'),
                'product': m.get('product'),
                'defect_type': m.get('defect_type'),
                'imdd_id': m.get('imdd_id'),
                'source': self.name,
            })
        return cats


# --------------------------------------------------------------------------
# driver: parallel map, ids, splits, writing
# --------------------------------------------------------------------------
_WORKER_CONVERTER: Optional[BaseConverter] = None
_WORKER_SKIP = False


def _init_worker(converter: BaseConverter, skip: bool) -> None:
    global _WORKER_CONVERTER, _WORKER_SKIP
    _WORKER_CONVERTER = converter
    _WORKER_SKIP = skip
    try:
        cv2.setNumThreads(1)
    except Exception:  # pragma: no cover
        pass


def _work(item: Any) -> Dict[str, Any]:
    conv = _WORKER_CONVERTER
    assert conv is not None
    try:
        return conv.convert_item(item)
    except ConversionError as e:
        if not _WORKER_SKIP:
            raise
        return {'skipped': {'path': e.path, 'reason': e.reason,
                            'item': conv.item_path(item)}}
    except Exception as e:  # unexpected: name the item, keep the type
        where = osp.join(str(conv.root), conv.item_path(item))
        if not _WORKER_SKIP:
            raise ConversionError(where, f'{type(e).__name__}: {e}') from e
        return {'skipped': {'path': where,
                            'reason': f'{type(e).__name__}: {e}',
                            'item': conv.item_path(item)}}


def _chunksize(n: int, nproc: int) -> int:
    """Items per task: small enough to balance the tail."""
    return max(1, min(16, n // (nproc * 8)))


def _map(converter: BaseConverter, items: List[Any], nproc: int, skip: bool,
         progress: bool) -> List[Dict[str, Any]]:
    from tqdm import tqdm
    bar = tqdm(total=len(items), desc=f'convert {converter.name}',
               unit='img', disable=not progress, dynamic_ncols=True)
    results: List[Dict[str, Any]] = []
    try:
        if nproc <= 1 or len(items) <= 1:
            _init_worker(converter, skip)
            for it in items:
                results.append(_work(it))
                bar.update(1)
        else:
            methods = mp.get_all_start_methods()
            ctx = mp.get_context('fork' if 'fork' in methods else None)
            chunk = _chunksize(len(items), nproc)
            # forked workers inherit this process's heap (torch, mmdet,
            # taxonomy ...; ~1 GB): frozen, a full collection in a worker
            # never walks (and copy-on-write copies) it
            gc.freeze()
            try:
                with ctx.Pool(nproc, initializer=_init_worker,
                              initargs=(converter, skip)) as pool:
                    for r in pool.imap(_work, items, chunksize=chunk):
                        results.append(r)
                        bar.update(1)
            finally:
                gc.unfreeze()
    finally:
        bar.close()
    return results


def run_conversion(converter: BaseConverter,
                   out_dir: PathLike,
                   nproc: int = 1,
                   on_error: str = 'raise',
                   seed: int = 0,
                   ratios: Sequence[float] = DEFAULT_RATIOS,
                   progress: bool = True) -> Dict[str, Any]:
    """Convert a dataset and write the outputs atomically.

    Nothing is written if conversion fails (``on_error='raise'``). Output is
    identical for any ``nproc`` and byte-identical across reruns.

    Returns:
        dict: summary (``num_images``, ``num_annotations``, ``num_normal``,
        ``num_skipped``, ``splits`` -> image counts, ``files``).
    """
    if on_error not in ('raise', 'skip'):
        raise ValueError(f'on_error must be raise or skip, got {on_error!r}')
    skip = on_error == 'skip'
    items = list(converter.scan())
    if not items:
        raise ConversionError(converter.root, f'{converter.name}: no images '
                              'found (is this the layout the converter '
                              'documents?)')
    # taxonomy, vocabulary and category metadata are loaded here, once,
    # before the workers fork (they inherit them instead of re-importing)
    from imdd_mm.vocab import extract_nouns
    extract_nouns('warm-up')
    cats = converter.categories()
    for c in converter.classes:
        converter._meta(c)
    converter._meta(None)
    results = _map(converter, items, int(nproc), skip, progress)
    skipped = sorted([r['skipped'] for r in results if 'skipped' in r]
                     + [dict(s) for s in converter.scan_report],
                     key=lambda s: (s['path'], s['reason']))
    done = [r for r in results if 'skipped' not in r]
    if not done:
        first = '; '.join(f'{s["path"]}: {s["reason"]}'
                          for s in skipped[:3])
        raise ConversionError(converter.root, f'nothing converted: all '
                              f'{len(items)} item(s) were skipped ({first}'
                              f'{" ..." if len(skipped) > 3 else ""})')
    done.sort(key=lambda r: r['image']['file_name'])
    names = [r['image']['file_name'] for r in done]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[0]
        raise ConversionError(osp.join(str(converter.root), dup),
                              'image listed twice')
    if converter.native_splits:
        for r in done:
            if not r['image']['split']:
                raise ConversionError(
                    osp.join(str(converter.root), r['image']['file_name']),
                    'native split missing')
    else:
        splits = stratified_split([r['stratum'] for r in done], ratios,
                                  seed, order=names)
        for r, s in zip(done, splits):
            r['image']['split'] = s
    images_by_split: Dict[str, List[Dict]] = {}
    anns_by_split: Dict[str, List[Dict]] = {}
    ann_id = 0
    for img_id, r in enumerate(done, start=1):
        img = dict(r['image'], id=img_id)
        sp = img['split']
        images_by_split.setdefault(sp, []).append(img)
        for a in r['annotations']:
            ann_id += 1
            anns_by_split.setdefault(sp, []).append(
                dict(a, id=ann_id, image_id=img_id))
    out = Path(out_dir)
    licenses = [{'id': 1, 'name': converter.license, 'url': ''}]
    info = {'description': f'{converter.name} converted by imdd-mm',
            'source': converter.name, 'reference': converter.reference,
            'version': '1.0'}
    files: Dict[str, str] = {}
    texts: Dict[str, str] = {}
    split_names = sorted(images_by_split,
                         key=lambda s: (SPLIT_ORDER.index(s)
                                        if s in SPLIT_ORDER else 99, s))
    for sp in split_names:
        coco = {'info': info, 'licenses': licenses,
                'images': images_by_split[sp],
                'annotations': anns_by_split.get(sp, []),
                'categories': cats}
        texts[f'annotations/{sp}.json'] = dumps_json(coco) + '\n'
    lines = []
    for r in done:  # relocatable: no path of this machine, only file_name
        im = r['image']
        lines.append(dumps_json({
            'file_name': im['file_name'],
            'caption': im['caption'], 'nouns': im['caption_nouns'],
            'source': converter.name, 'split': im['split'],
            'is_normal': im['is_normal'], 'width': im['width'],
            'height': im['height']}))
    texts['captions.jsonl'] = ''.join(line + '\n' for line in lines)
    texts['categories.json'] = dumps_json(cats) + '\n'
    texts['skipped.json'] = dumps_json(skipped) + '\n'
    # everything is rendered; now write (each file atomically) and drop
    # split files a previous run left behind
    for rel, text in texts.items():
        atomic_write_text(out / rel, text)
        files[rel] = str(out / rel)
    for old in sorted((out / 'annotations').glob('*.json')):
        if f'annotations/{old.name}' not in texts:
            old.unlink()
    return {
        'num_images': len(done),
        'num_annotations': ann_id,
        'num_normal': sum(r['image']['is_normal'] for r in done),
        'num_skipped': len(skipped),
        'splits': {sp: len(images_by_split[sp]) for sp in split_names},
        'files': files,
    }
