# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Sharded IMDD corpus as an mmengine dataset (Stage-1 pre-training).

Reads the corpus written by ``data_converters/build_corpus.py``::

    CORPUS/index.json               shard list, counts, unified categories
    CORPUS/shards/shard-NNNNN.jsonl one image record per line
    CORPUS/shards/shard-NNNNN.idx   little-endian int64 byte offset per line

Memory: ``full_init`` reads only ``index.json`` (a few KB per shard). A record
is read on demand: ``get_data_info(i)`` finds the shard by binary search over
the cumulative shard sizes, reads the line's offset from the shard's ``.idx``
(memory-mapped, loaded on first use) and parses that one line. No process,
main or dataloader worker, ever holds the whole corpus or one giant JSON;
open file handles and offset maps are per process (dropped on pickling and
re-opened lazily in each worker). ``serialize_data`` is therefore meaningless
here and forced to False: the index *is* the shared, compact representation
(8 bytes per image in page-cache-backed memory maps).

Each item, before the pipeline, is a dict with mmdet's usual keys
(``img_path``, ``img_id``, ``height``, ``width``, ``instances``) plus the
sample metainfo of docs/DESIGN.md: ``caption``, ``caption_nouns``,
``is_normal``, ``source``, ``image_label`` (contiguous class index into
``metainfo['classes']``, -1 = none). Instances (``with_instances=True``)
carry ``bbox`` (xyxy), ``bbox_label`` (class index), ``mask`` (COCO RLE or
polygons) and ``ignore_flag``.
"""
import bisect
import copy
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.fileio import get_local_path

from mmdet.registry import DATASETS


@DATASETS.register_module()
class IMDDCorpusDataset(BaseDataset):
    """Lazily loaded, sharded image-caption corpus.

    Args:
        ann_file (str): ``index.json`` of the corpus (or the corpus folder),
            relative to ``data_root`` unless absolute.
        with_instances (bool): return instances (boxes/masks) when the corpus
            has them. Default: True.
        filter_cfg (dict, optional): ``splits`` (list of split names to keep),
            ``sources`` (list of sources to keep), ``require_caption`` (bool).
            Filtering needs one streaming pass over the shards at
            ``full_init`` and keeps an int64 array of the kept rows.
        img_root_override (str, optional): replaces every record's
            ``image_root`` (e.g. when the images moved). A relative
            ``image_root`` is relative to the corpus folder (the builder
            writes relative ones, so corpus and data can move together).
        img_roots (dict, optional): ``{source: root}``: the dataset root of
            the records of one source (relative: to the corpus folder);
            takes precedence over ``img_root_override``.
        max_open_files (int): shard file handles kept open per process.
        **kwargs: ``metainfo``, ``data_root``, ``indices``, ``pipeline``,
            ``test_mode``, ``lazy_init``, ``max_refetch`` of
            :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO: dict = dict(classes=())

    def __init__(self,
                 ann_file: str = '',
                 with_instances: bool = True,
                 filter_cfg: Optional[dict] = None,
                 img_root_override: Optional[str] = None,
                 img_roots: Optional[Dict[str, str]] = None,
                 max_open_files: int = 16,
                 serialize_data: bool = False,
                 **kwargs) -> None:
        self.with_instances = with_instances
        self.img_root_override = img_root_override
        self.img_roots = dict(img_roots or {})
        self.max_open_files = max(1, int(max_open_files))
        self._reset_state()
        # data_list is never built: force serialize_data off (see module doc)
        super().__init__(
            ann_file=ann_file,
            filter_cfg=filter_cfg,
            serialize_data=False,
            **kwargs)

    # ------------------------------------------------------------------
    # per-process state (never pickled)
    # ------------------------------------------------------------------
    def _reset_state(self) -> None:
        self._files: Dict[int, Any] = {}
        self._offsets: Dict[int, np.ndarray] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state['_files'] = {}
        state['_offsets'] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    def _check_pid(self) -> None:
        if self._pid != os.getpid():  # forked worker: own handles
            self._reset_state()

    # ------------------------------------------------------------------
    # initialisation
    # ------------------------------------------------------------------
    def full_init(self) -> None:
        """Read the index (not the shards) and apply filters/indices."""
        if self._fully_initialized:
            return
        ann_file = self.ann_file
        if osp.isdir(ann_file):
            ann_file = osp.join(ann_file, 'index.json')
        with get_local_path(ann_file) as local:
            with open(local, encoding='utf-8') as f:
                index = json.load(f)
        if 'shards' not in index:
            raise ValueError(f'{ann_file}: not an IMDD corpus index '
                             '(no "shards")')
        self._corpus_root = osp.dirname(osp.abspath(ann_file))
        self._shards: List[dict] = index['shards']
        sizes = [int(s['num_images']) for s in self._shards]
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(
            np.int64)
        self._starts_list = self._starts.tolist()
        self._total = int(self._starts[-1])
        cats = sorted(index.get('categories', []), key=lambda c: c['id'])
        if not self._metainfo.get('classes'):
            self._metainfo['classes'] = tuple(c['name'] for c in cats)
        # class index by name, so a user-given ``metainfo.classes`` (subset
        # or other order) works; categories outside it map to no class
        name2label = {n: i for i, n in enumerate(self._metainfo['classes'])}
        self._cat2label = {
            int(c['id']): name2label[c['name']]
            for c in cats if c['name'] in name2label
        }
        self._metainfo.setdefault('categories', cats)
        self._rows: Optional[np.ndarray] = None  # None = all rows
        if self.filter_cfg:
            self._rows = self._filter_rows()
        if self._indices is not None:
            self._rows = self._subset_rows(self._indices)
        self._fully_initialized = True

    def _filter_rows(self) -> np.ndarray:
        cfg = dict(self.filter_cfg)
        splits = cfg.pop('splits', None)
        sources = cfg.pop('sources', None)
        require_caption = cfg.pop('require_caption', False)
        if cfg:
            raise ValueError(f'unknown filter_cfg keys {sorted(cfg)} for '
                             'IMDDCorpusDataset (splits, sources, '
                             'require_caption)')
        keep = []
        row = 0
        for k in range(len(self._shards)):
            with open(self._shard_path(k), 'rb') as f:
                for line in f:
                    if not line.strip():
                        continue
                    rec = json.loads(line)
                    if (splits is None or rec.get('split') in splits) and \
                            (sources is None or rec.get('source') in sources) \
                            and (not require_caption or rec.get('caption')):
                        keep.append(row)
                    row += 1
        return np.asarray(keep, dtype=np.int64)

    def _subset_rows(self, indices: Union[int, Sequence[int]]) -> np.ndarray:
        rows = (np.arange(self._total, dtype=np.int64)
                if self._rows is None else self._rows)
        if isinstance(indices, int):
            return rows[:indices] if indices >= 0 else rows[indices:]
        return rows[np.asarray(list(indices), dtype=np.int64)]

    # ------------------------------------------------------------------
    # random access
    # ------------------------------------------------------------------
    def _shard_path(self, k: int) -> str:
        return osp.join(self._corpus_root, self._shards[k]['file'])

    def _shard_offsets(self, k: int) -> np.ndarray:
        off = self._offsets.get(k)
        if off is not None:
            return off
        shard = self._shards[k]
        idx_path = osp.join(self._corpus_root, shard['offsets']) \
            if shard.get('offsets') else None
        n = int(shard['num_images'])
        if idx_path and osp.isfile(idx_path):
            off = np.memmap(idx_path, dtype='<i8', mode='r') if n else \
                np.zeros(0, np.int64)
        else:  # no sidecar: scan the shard once (this process only)
            offsets, pos = [], 0
            with open(self._shard_path(k), 'rb') as f:
                for line in f:
                    if line.strip():
                        offsets.append(pos)
                    pos += len(line)
            off = np.asarray(offsets, dtype=np.int64)
        if len(off) != n:
            raise ValueError(
                f'{idx_path or self._shard_path(k)}: {len(off)} offsets but '
                f'index.json says {n} images')
        self._offsets[k] = off
        return off

    def _shard_file(self, k: int):
        f = self._files.get(k)
        if f is None:
            if len(self._files) >= self.max_open_files:
                old = next(iter(self._files))
                self._files.pop(old).close()
            f = open(self._shard_path(k), 'rb')
            self._files[k] = f
        return f

    def read_record(self, row: int) -> dict:
        """Raw corpus record at global row ``row`` (0-based)."""
        self._check_pid()
        if not 0 <= row < self._total:
            raise IndexError(f'row {row} out of range [0, {self._total})')
        k = bisect.bisect_right(self._starts_list, row) - 1
        off = int(self._shard_offsets(k)[row - self._starts_list[k]])
        f = self._shard_file(k)
        f.seek(off)
        line = f.readline()
        try:
            return json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f'{self._shard_path(k)}: bad record at byte '
                             f'{off}: {exc}') from exc

    def _row(self, idx: int) -> int:
        n = len(self)
        if idx < 0:
            idx += n
        if not 0 <= idx < n:
            raise IndexError(f'index {idx} out of range for {n} images')
        return idx if self._rows is None else int(self._rows[idx])

    def parse_data_info(self, rec: dict) -> dict:
        """Corpus record -> mmdet data info."""
        root = self.img_roots.get(rec.get('source', '')) or \
            self.img_root_override or rec.get('image_root') or ''
        if not osp.isabs(root):  # relative roots: relative to the corpus
            root = osp.join(self._corpus_root, root)
        label = rec.get('image_label')
        info = dict(
            img_path=osp.join(root, rec['file_name']),
            img_id=rec.get('id'),
            height=rec.get('height'),
            width=rec.get('width'),
            caption=rec.get('caption', '') or '',
            caption_nouns=list(rec.get('nouns') or []),
            is_normal=bool(rec.get('is_normal', False)),
            source=rec.get('source', ''),
            split=rec.get('split'),
            image_label=self._cat2label.get(int(label), -1)
            if label is not None else -1,
        )
        instances = []
        if self.with_instances:
            for inst in rec.get('instances') or ():
                label = self._cat2label.get(int(inst['category_id']))
                if label is None:  # category outside metainfo['classes']
                    continue
                x, y, w, h = inst['bbox']
                item = dict(
                    bbox=[x, y, x + w, y + h],
                    bbox_label=label,
                    ignore_flag=int(bool(inst.get('iscrowd', 0))))
                if inst.get('segmentation'):
                    item['mask'] = inst['segmentation']
                instances.append(item)
        info['instances'] = instances
        return info

    def get_data_info(self, idx: int) -> dict:
        if not self._fully_initialized:
            self.full_init()
        data_info = self.parse_data_info(self.read_record(self._row(idx)))
        data_info['sample_idx'] = idx if idx >= 0 else len(self) + idx
        return data_info

    def get_cat_ids(self, idx: int) -> List[int]:
        info = self.get_data_info(idx)
        return sorted({i['bbox_label'] for i in info['instances']})

    def __len__(self) -> int:
        if not self._fully_initialized:
            self.full_init()
        return self._total if self._rows is None else len(self._rows)

    # ------------------------------------------------------------------
    # subsets (rows only; shards are shared)
    # ------------------------------------------------------------------
    def get_subset_(self, indices: Union[Sequence[int], int]) -> None:
        if not self._fully_initialized:
            self.full_init()
        self._rows = self._subset_rows(indices)

    def get_subset(self, indices: Union[Sequence[int], int]
                   ) -> 'IMDDCorpusDataset':
        if not self._fully_initialized:
            self.full_init()
        sub = copy.copy(self)
        sub._reset_state()  # own handles; never close the parent's
        sub._rows = self._subset_rows(indices)
        return sub

    def __del__(self):
        for f in getattr(self, '_files', {}).values():
            try:
                f.close()
            except Exception:  # pragma: no cover
                pass
