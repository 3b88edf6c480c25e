# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""WM-811K wafer maps -> COCO (image-level failure patterns).

Expected input tree (as published by the MIR lab)::

    wm811k/                 <- --root
    └── LSWMD.pkl           pandas DataFrame pickle, 811,457 rows with
                            waferMap (2-D uint8: 0 no die, 1 good die,
                            2 failing die), dieSize, lotName, waferIndex,
                            trianTestLabel ([['Training']] / [['Test']] /
                            []), failureType ([['Center']] ... [['none']] /
                            [] = unlabelled)

**The one exception to "images are referenced, never copied":** the source
has no image files, so this converter renders every labelled wafer map once
to an 8-bit PNG (0 -> 0, 1 -> 127, 2 -> 255; one pixel per die, native
size) under ``<render_dir>/<lotName>_<waferIndex>_<row>.png`` and
references those. ``render_dir`` (config) defaults to ``<root>/images``;
set it to e.g. ``OUT/images`` when the root is read-only (``file_name`` is
then relative to the root via ``..``). Files that already exist with the
same bytes are left alone, so a rerun rewrites nothing and gives identical
output. Rendering happens in ``scan`` (main process, ~50 µs a map).

Conversion:

* Categories: the eight failure patterns ``Center, Donut, Edge-Loc,
  Edge-Ring, Loc, Near-full, Random, Scratch``; ``none`` wafers are normal.
  Unlabelled wafers (about 638k) are skipped unless
  ``config['include_unlabeled']`` is true (then they are neither normal
  nor labelled, carry ``attributes['unlabelled']`` and, lacking a
  ``trianTestLabel``, go to ``train`` - for pre-training only).
* Splits: ``trianTestLabel`` (sic) ``Training`` -> ``train``, ``Test`` ->
  ``test``.
* No instances: wafer patterns are image-level labels.

Reading the pickle needs ``pandas``. The published ``LSWMD.pkl`` is a
Python-2 pickle written by pandas < 0.20: it references the long-gone
modules ``pandas.indexes.*`` (and index classes such as ``Int64Index``) and
its byte strings need ``encoding='latin1'``; ``pd.read_pickle`` of pandas
3 no longer maps them. :func:`load_legacy_pickle` reads it with an
unpickler that maps the old module paths onto the current ones, on top of
pandas' own compatibility unpickler (which still restores the "0.14.1"
BlockManager state such pickles hold). :func:`iter_wafer_rows` accepts any
iterable of rows, so other exports can reuse the renderer.

Licence: free for research use with citation (MIR lab, National Taiwan
University).

Reference: M.-J. Wu, J.-S. R. Jang, J.-L. Chen, "Wafer Map Failure Pattern
Recognition and Similarity Ranking for Large-Scale Data Sets", IEEE Trans.
Semiconductor Manufacturing 28(1) (2015).
"""
import os
import os.path as osp
import pickle
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, register_converter)
from data_converters.sources._common import image_size

CLASSES = ('Center', 'Donut', 'Edge-Loc', 'Edge-Ring', 'Loc', 'Near-full',
           'Random', 'Scratch')
NORMAL = 'none'
SPLITS = {'training': 'train', 'test': 'test'}

Item = Tuple[str, Optional[str], Optional[str]]  # rel png, label, split


def _scalar(v: Any) -> Optional[str]:
    """``[['Center']]`` / ``'Center'`` / ``[]`` -> 'Center' / None."""
    a = np.asarray(v, dtype=object).ravel()
    if a.size == 0:
        return None
    s = str(a[0]).strip()
    return s or None


def render_wafer(wafer: np.ndarray) -> bytes:
    """Wafer map (H, W) with values {0, 1, 2} -> PNG bytes."""
    m = np.asarray(wafer)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f'wafer map must be 2-D and non-empty, got shape '
                         f'{m.shape}')
    lut = np.array([0, 127, 255], np.uint8)
    img = lut[np.clip(m.astype(np.int64), 0, 2)]
    ok, buf = cv2.imencode('.png', img)
    if not ok:
        raise ValueError('PNG encoding failed')
    return buf.tobytes()


#: Module paths of pandas < 0.20 (Python-2 era pickles) -> current ones.
LEGACY_MODULES = {
    'pandas.core.index': 'pandas.core.indexes.base',
    'pandas.indexes.base': 'pandas.core.indexes.base',
    'pandas.indexes.range': 'pandas.core.indexes.range',
    'pandas.indexes.numeric': 'pandas.core.indexes.base',
    'pandas.indexes.multi': 'pandas.core.indexes.multi',
    'pandas.indexes.category': 'pandas.core.indexes.category',
    'pandas.indexes.frozen': 'pandas.core.indexes.frozen',
    'pandas.indexes.datetimes': 'pandas.core.indexes.datetimes',
    'pandas.tseries.index': 'pandas.core.indexes.datetimes',
    'pandas.tseries.period': 'pandas.core.indexes.period',
    'pandas.tseries.tdi': 'pandas.core.indexes.timedeltas',
}
#: Index classes removed in pandas 2 (their data keep their dtype).
LEGACY_CLASSES = {'Int64Index': 'Index', 'UInt64Index': 'Index',
                  'Float64Index': 'Index'}


def _legacy_unpickler_class():
    """``pickle.Unpickler`` subclass mapping old pandas paths (built lazily:
    pandas is imported only to read WM-811K)."""
    try:  # pandas' own table (renamed blocks, index classes, ...)
        from pandas.compat.pickle_compat import Unpickler as base
    except ImportError:  # pragma: no cover - pandas without pickle_compat
        base = pickle.Unpickler

    class LegacyPandasUnpickler(base):

        def find_class(self, module, name):
            module = LEGACY_MODULES.get(module, module)
            if module.startswith('pandas.indexes.'):
                module = 'pandas.core.indexes.' + module.split('.', 2)[2]
            if module.startswith('pandas.core.indexes.'):
                name = LEGACY_CLASSES.get(name, name)
            return super().find_class(module, name)

    return LegacyPandasUnpickler


def load_legacy_pickle(path: Path) -> Any:
    """Unpickle a (possibly Python-2, pandas < 0.20) pickle file.

    Byte strings are decoded as latin-1 (what numpy and pandas need for
    Python-2 pickles); old ``pandas.indexes.*`` paths are mapped to
    ``pandas.core.indexes.*``.

    Raises:
        ConversionError: unreadable or not a pickle, naming the file.
    """
    cls = _legacy_unpickler_class()
    try:
        with open(path, 'rb') as f:
            return cls(f, encoding='latin1').load()
    except OSError as e:
        raise ConversionError(path, f'unreadable ({e})') from None
    except Exception as e:  # noqa: BLE001  any unpickling failure
        raise ConversionError(path, f'cannot read pickle ({type(e).__name__}'
                              f': {e})') from None


def iter_wafer_rows(frame) -> Iterator[Dict[str, Any]]:
    """Rows of the LSWMD DataFrame as dicts (``waferMap``, ``failureType``,
    ``trianTestLabel``, ``lotName``, ``waferIndex``)."""
    cols = list(frame.columns)
    for row in frame.itertuples(index=False):
        yield dict(zip(cols, row))


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.is_file() and path.stat().st_size == len(data) and \
            path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    tmp.write_bytes(data)
    os.replace(tmp, path)


@register_converter('wm811k')
class WM811KConverter(BaseConverter):
    """WM-811K (see module docstring)."""
    license = 'research use with citation (MIR lab, NTU)'
    reference = ('Wu, Jang and Chen, Wafer Map Failure Pattern Recognition '
                 'and Similarity Ranking for Large-Scale Data Sets, IEEE '
                 'TSM 2015')
    classes = CLASSES
    native_splits = True

    def __init__(self, root, config: Optional[dict] = None) -> None:
        super().__init__(root, config)
        rd = self.config.get('render_dir')
        self.render_dir = Path(rd) if rd else self.root / 'images'
        if not self.render_dir.is_absolute():
            self.render_dir = Path.cwd() / self.render_dir
        self.pickle = self.root / str(self.config.get('pickle', 'LSWMD.pkl'))

    def _load_rows(self) -> Iterable[Dict[str, Any]]:
        if not self.pickle.is_file():
            raise ConversionError(self.pickle, 'file not found')
        try:
            import pandas as pd
        except ImportError:
            raise ConversionError(self.pickle, 'reading LSWMD.pkl needs '
                                  'pandas (pip install pandas)') from None
        frame = load_legacy_pickle(self.pickle)
        if not isinstance(frame, pd.DataFrame):
            raise ConversionError(self.pickle, 'expected a pandas DataFrame, '
                                  f'got {type(frame).__name__}')
        need = {'waferMap', 'failureType'}
        if not need <= set(frame.columns):
            raise ConversionError(self.pickle, f'missing columns '
                                  f'{sorted(need - set(frame.columns))}')
        return iter_wafer_rows(frame)

    def items_from_rows(self, rows: Iterable[Dict[str, Any]]) -> List[Item]:
        """Render the labelled wafer maps of ``rows`` and list them."""
        include_unlabeled = bool(self.config.get('include_unlabeled'))
        items = []
        for k, row in enumerate(rows):
            label = _scalar(row.get('failureType'))
            split_raw = _scalar(row.get('trianTestLabel',
                                        row.get('trainTestLabel')))
            if label is None and not include_unlabeled:
                continue
            if label is not None and label != NORMAL and \
                    label not in CLASSES:
                raise ConversionError(self.pickle, f'row {k}: unknown '
                                      f'failureType {label!r}')
            split = SPLITS.get((split_raw or '').lower())
            if split is None and not include_unlabeled:
                raise ConversionError(self.pickle, f'row {k}: unknown '
                                      f'trianTestLabel {split_raw!r}')
            lot = str(_scalar(row.get('lotName')) or 'lot').replace('/', '_')
            idx = _scalar(row.get('waferIndex')) or '0'
            try:
                idx = str(int(float(idx)))
            except ValueError:
                pass
            try:
                png = render_wafer(row['waferMap'])
            except (KeyError, ValueError) as e:
                raise ConversionError(self.pickle, f'row {k}: bad waferMap '
                                      f'({e})') from None
            path = self.render_dir / f'{lot}_{idx}_{k}.png'
            _write_if_changed(path, png)
            rel = Path(osp.relpath(path, self.root)).as_posix()
            items.append((rel, label, split or 'train'))
        if not items:
            raise ConversionError(self.pickle, 'no labelled wafer maps')
        return items

    def scan(self) -> List[Item]:
        return self.items_from_rows(self._load_rows())

    def item_path(self, item: Any) -> str:
        return item[0]

    def load(self, item: Item) -> ImageRecord:
        rel, label, split = item
        h, w = image_size(self.root / rel)
        attrs = {} if label is not None else {'unlabelled': True}
        if label == NORMAL:
            return ImageRecord(rel, w, h, is_normal=True, split=split)
        return ImageRecord(rel, w, h, image_label=label, split=split,
                           attributes=attrs)
