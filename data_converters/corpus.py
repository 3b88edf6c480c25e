# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Corpus builder: merge converted datasets into one sharded IMDD corpus.

Input: one or more converter output folders (``convert.py ... --out-dir``)::

    OUT/
    ├── annotations/<split>.json   COCO instances (images carry caption,
    │                              caption_nouns, is_normal, source, ...)
    ├── captions.jsonl             one line per image (``file_name`` is
    │                              relative to the dataset root, given as
    │                              ``image_root`` / ``--image-root``)
    └── categories.json            categories with taxonomy fields (imdd_id)

Output (``--out-dir CORPUS``)::

    CORPUS/
    ├── index.json                 shards, counts, categories, per-source stats
    ├── categories.json            unified categories (``id == imdd_id``)
    ├── shards/shard-00000.jsonl   <= shard_size images, one JSON object a line
    ├── shards/shard-00000.idx     byte offset of every line (little-endian
    │                              int64), for O(1) random access
    ├── duplicates.jsonl           every dropped duplicate and what it repeats
    ├── excluded.jsonl             every excluded image and why
    └── errors.jsonl               unreadable images skipped (on_error='skip')

One shard line (the ``captions.jsonl`` fields of docs/DESIGN.md plus ids and
instances)::

    {"id": 17, "file_name": "bottle/test/broken_large/000.png",
     "image_root": "../mvtec_ad", "width": 900, "height": 900,
     "caption": "...", "nouns": ["bottle", "glass", ...], "source": "mvtec_ad",
     "split": "test", "is_normal": false, "image_label": null,
     "sha256": "...", "original_id": 3, "original_path": "...",
     "license": "...", "instances": [{"category_id": <imdd_id>,
     "bbox": [x, y, w, h], "area": 123.0, "segmentation": {...}}]}

Properties:

* **Unified ids**: category ids are the taxonomy's global ``imdd_id`` (the
  unified defect type; its name is the defect type, with the domains,
  materials and ``source:class`` names merged into it); images get new
  global ids ``1..N`` in output order; ``image_label`` is remapped.
* **Exact de-duplication** by the SHA-256 of the image bytes (read streamed);
  the first occurrence in input order wins. The hash set lives in an on-disk
  sqlite3 table, not in RAM.
* **Exclusion** (so evaluation images never leak into pre-training):
  ``dataset:split`` specs (``mvtec_ad:test``, ``visa:*``) matched against the
  input's name or the images' ``source``; files listing SHA-256 hashes, image
  paths (absolute, or relative to the dataset root = ``file_name``) or specs.
  With ``exclude_by_content`` (default) the hashes of every excluded image are
  excluded too, so a byte-identical copy of an evaluation image shipped by
  another source is dropped as well.
* **Bounded memory**: COCO files are read in one pass with an incremental
  JSON reader and joined with their annotations through sqlite3 (page cache
  capped at 8 MiB per database); records stream straight into the current
  shard file. Peak memory does not grow with the corpus size
  (``benchmarks/bench_corpus.py`` measures it).
* **Atomic, deterministic**: every shard is written to a temporary file and
  ``os.replace``-d; the index is written last; no timestamps or absolute
  temporary paths end up in the output, so a rerun gives byte-identical files.
* **Relocatable**: each record's ``image_root`` is its dataset root relative
  to the corpus folder, so the corpus and the data move together
  (``IMDDCorpusDataset(img_roots=...)`` points sources elsewhere).
* **Few-shot sampler**: ``N`` images per class, seeded. The class of an image
  is its ``image_label``, else the category of its largest instance; normal
  images form the class ``'normal'`` (sampled only on request). Within a class
  the images with the smallest ``sha256(seed, source, file_name)`` are taken,
  so the choice does not depend on input order and the ``N=25`` sample is a
  subset of the ``N=50`` sample.
"""
import hashlib
import heapq
import json
import os
import os.path as osp
import re
import shutil
import sqlite3
import struct
import tempfile
from dataclasses import dataclass, field
from multiprocessing import Pool
from typing import (Any, Dict, Iterable, Iterator, List, Optional, Sequence,
                    Set, Tuple, Union)

INDEX_VERSION = 1
_BATCH = 512  # rows per sqlite executemany (bounds the staging memory)
SHARD_PATTERN = 'shard-{:05d}.jsonl'
NORMAL_CLASS = 'normal'
_HEX64 = re.compile(r'^[0-9a-fA-F]{64}$')
_SPEC = re.compile(r'^([A-Za-z0-9_.\-]+):([A-Za-z0-9_.\-]+|\*)$')
_WS = re.compile(r'[ \t\n\r]*')
_DECODER = json.JSONDecoder()


# --------------------------------------------------------------------------
# Incremental JSON reading (stdlib only; no ijson)
# --------------------------------------------------------------------------
class _JsonStream:
    """Character stream over a JSON file with a growing look-ahead buffer."""

    def __init__(self, path: str, chunk_size: int = 1 << 18):
        self.path = path
        self.f = open(path, encoding='utf-8')
        self.chunk_size = chunk_size
        self.buf = ''
        self.pos = 0
        self.eof = False

    def close(self) -> None:
        self.f.close()

    def _fill(self, min_size: int = 0) -> bool:
        data = self.f.read(max(self.chunk_size, min_size))
        if not data:
            self.eof = True
            return False
        self.buf = self.buf[self.pos:] + data
        self.pos = 0
        return True

    def peek(self) -> str:
        """Skip whitespace and return the next character ('' at EOF)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ''

    def expect(self, char: str) -> None:
        got = self.peek()
        if got != char:
            raise ValueError(f'{self.path}: invalid JSON, expected {char!r} '
                             f'but found {got or "end of file"!r}')
        self.pos += 1

    def value(self) -> Any:
        """Decode one complete JSON value at the current position."""
        self.peek()
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.buf, self.pos)
                # a number cut by the buffer end would decode "successfully"
                if end < len(self.buf) or self.eof:
                    self.pos = end
                    return obj
            except json.JSONDecodeError as exc:
                if self.eof:
                    raise ValueError(f'{self.path}: invalid JSON: {exc}')
            # grow geometrically so a long value is not re-parsed too often
            if not self._fill(len(self.buf) - self.pos):
                self.eof = True

    def iter_array(self) -> Iterator[Any]:
        self.expect('[')
        if self.peek() == ']':
            self.pos += 1
            return
        while True:
            yield self.value()
            nxt = self.peek()
            self.pos += 1
            if nxt == ']':
                return
            if nxt != ',':
                raise ValueError(f'{self.path}: invalid JSON array, found '
                                 f'{nxt or "end of file"!r}')


#: Sentinel yielded by :func:`iter_json_arrays` after an array's last item.
END = object()


def iter_json_arrays(path: str, keys: Sequence[str],
                     chunk_size: int = 1 << 18) -> Iterator[Tuple[str, Any]]:
    """One streaming pass over the top-level object in ``path``: yield
    ``(key, element)`` for every element of the arrays named in ``keys``, in
    file order, then ``(key, END)`` when that array is complete. Other
    values are skipped; the whole file is never held in memory."""
    keys = set(keys)
    stream = _JsonStream(path, chunk_size)
    try:
        stream.expect('{')
        if stream.peek() == '}':
            return
        while True:
            name = stream.value()
            if not isinstance(name, str):
                raise ValueError(f'{path}: invalid JSON object key {name!r}')
            stream.expect(':')
            if name in keys:
                if stream.peek() != '[':
                    raise ValueError(f'{path}: "{name}" is not a JSON array')
                for item in stream.iter_array():
                    yield name, item
                yield name, END
            elif stream.peek() == '[':
                for _ in stream.iter_array():
                    pass
            else:
                stream.value()
            nxt = stream.peek()
            stream.pos += 1
            if nxt == '}':
                return
            if nxt != ',':
                raise ValueError(f'{path}: invalid JSON object, found '
                                 f'{nxt or "end of file"!r}')
    finally:
        stream.close()


def iter_json_array(path: str, key: str,
                    chunk_size: int = 1 << 18) -> Iterator[Any]:
    """Yield the elements of ``obj[key]`` of the top-level object in ``path``
    one at a time (a missing key yields nothing); stops reading after it."""
    for _, item in iter_json_arrays(path, (key, ), chunk_size):
        if item is END:
            return
        yield item


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------
def hash_file(path: str) -> str:
    """SHA-256 hex digest of a file's bytes, read streamed."""
    try:
        with open(path, 'rb') as f:
            return hashlib.file_digest(f, 'sha256').hexdigest()
    except OSError as exc:
        raise OSError(f'{path}: cannot read image for hashing: {exc}') from exc


def _hash_or_error(path: str) -> Tuple[Optional[str], Optional[str]]:
    try:
        return hash_file(path), None
    except OSError as exc:
        return None, str(exc)


def _atomic_write_text(path: str, text: str) -> None:
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, path)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True,
                      separators=(',', ':'))


def _open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute('PRAGMA journal_mode=OFF')
    db.execute('PRAGMA synchronous=OFF')
    db.execute('PRAGMA temp_store=FILE')
    db.execute('PRAGMA cache_size=-8192')  # 8 MiB page cache at most
    return db


# --------------------------------------------------------------------------
# Inputs and exclusions
# --------------------------------------------------------------------------
@dataclass
class CorpusInput:
    """One converted dataset.

    Args:
        out_dir: the converter's ``--out-dir``.
        name: name used by exclusion specs; defaults to the folder name.
        image_root: where ``file_name`` is relative to: the dataset root
            (the converter's ``--root``). Converter outputs do not record it
            (they are relocatable); only files that carry an ``image_root``
            (older outputs) default to that of their first line (relative
            roots are taken relative to ``out_dir``).
        splits: splits to read (default: every ``annotations/*.json``,
            in the order train, val, test, then others by name).
    """
    out_dir: str
    name: Optional[str] = None
    image_root: Optional[str] = None
    splits: Optional[Sequence[str]] = None

    def __post_init__(self):
        self.out_dir = osp.abspath(self.out_dir)
        if not osp.isdir(self.out_dir):
            raise FileNotFoundError(
                f'{self.out_dir}: converted dataset folder not found')
        if self.name is None:
            self.name = osp.basename(self.out_dir.rstrip(os.sep))
        if self.image_root is None:
            self.image_root = _image_root_from_captions(self.out_dir)
        self.image_root = osp.abspath(osp.join(self.out_dir, self.image_root))
        if self.splits is None:
            ann_dir = osp.join(self.out_dir, 'annotations')
            if not osp.isdir(ann_dir):
                raise FileNotFoundError(
                    f'{ann_dir}: no annotations/ folder in converted dataset')
            order = {'train': 0, 'val': 1, 'test': 2}
            self.splits = sorted(
                (f[:-5] for f in os.listdir(ann_dir) if f.endswith('.json')),
                key=lambda s: (order.get(s, 3), s))

    @classmethod
    def parse(cls, spec: str,
              image_roots: Optional[Dict[str, str]] = None) -> 'CorpusInput':
        """``OUT_DIR`` or ``NAME=OUT_DIR``; ``image_roots`` maps names to
        image-root overrides."""
        name = None
        path = spec
        if '=' in spec and not osp.isdir(spec):
            name, path = spec.split('=', 1)
        if name is None:
            name = osp.basename(osp.abspath(path).rstrip(os.sep))
        root = (image_roots or {}).get(name)
        return cls(out_dir=path, name=name,
                   image_root=osp.abspath(root) if root else None)

    def ann_file(self, split: str) -> str:
        return osp.join(self.out_dir, 'annotations', f'{split}.json')


def _relative_root(root: str, corpus_dir: str) -> str:
    """``root`` relative to the corpus folder (POSIX), so corpus and data
    can move together; absolute only where no relative path exists."""
    try:
        return osp.relpath(root, osp.abspath(corpus_dir)).replace(os.sep,
                                                                  '/')
    except ValueError:  # another drive (Windows)
        return root


def _image_root_from_captions(out_dir: str) -> str:
    path = osp.join(out_dir, 'captions.jsonl')
    try:
        with open(path, encoding='utf-8') as f:
            for line in f:
                if line.strip():
                    root = json.loads(line).get('image_root')
                    if root:
                        return root
                    break
    except FileNotFoundError:
        pass
    raise ValueError(f'{path}: converter outputs do not record where their '
                     "images are: give the dataset root (the converter's "
                     '--root) as image_root / --image-root '
                     f'{osp.basename(out_dir.rstrip(os.sep))}=DIR')


@dataclass
class Exclusions:
    """What must never enter the corpus."""
    specs: List[Tuple[str, str]] = field(default_factory=list)
    hashes: Set[str] = field(default_factory=set)
    abs_paths: Set[str] = field(default_factory=set)
    rel_paths: Set[str] = field(default_factory=set)

    def add(self, item: str, base_dir: Optional[str] = None) -> None:
        item = item.strip()
        if not item or item.startswith('#'):
            return
        spec = _SPEC.match(item)
        if _HEX64.match(item):
            self.hashes.add(item.lower())
        elif spec and not osp.exists(item):
            self.specs.append((spec.group(1), spec.group(2)))
        elif osp.isabs(item):
            self.abs_paths.add(osp.normpath(item))
        else:
            self.rel_paths.add(osp.normpath(item))

    @classmethod
    def build(cls, specs: Iterable[str] = (),
              files: Iterable[str] = ()) -> 'Exclusions':
        exc = cls()
        for spec in specs:
            if not _SPEC.match(spec.strip()):
                raise ValueError(f'exclusion spec {spec!r} is not '
                                 '"dataset:split" (split may be "*")')
            exc.add(spec)
        for path in files:
            if not osp.isfile(path):
                raise FileNotFoundError(f'{path}: exclusion list not found')
            with open(path, encoding='utf-8') as f:
                for line in f:
                    exc.add(line)
        return exc

    def split_excluded(self, inp: CorpusInput, source: str,
                       split: str) -> Optional[str]:
        for name, sp in self.specs:
            if name in (inp.name, source) and sp in ('*', split):
                return f'{name}:{sp}'
        return None

    def path_excluded(self, abs_path: str, file_name: str) -> Optional[str]:
        if osp.normpath(abs_path) in self.abs_paths:
            return 'path'
        if osp.normpath(file_name) in self.rel_paths:
            return 'path'
        return None

    def __bool__(self) -> bool:
        return bool(self.specs or self.hashes or self.abs_paths
                    or self.rel_paths)


# --------------------------------------------------------------------------
# Reading converted datasets as per-image records
# --------------------------------------------------------------------------
def load_categories(inp: CorpusInput) -> Dict[int, dict]:
    """Local category id -> category dict (with ``imdd_id``)."""
    path = osp.join(inp.out_dir, 'categories.json')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: categories.json missing')
    with open(path, encoding='utf-8') as f:
        cats = json.load(f)
    if isinstance(cats, dict):
        cats = cats.get('categories', [])
    out = {}
    for cat in cats:
        if cat.get('imdd_id') is None:
            raise ValueError(f'{path}: category {cat.get("name")!r} has no '
                             'imdd_id (not mapped into the IMDD taxonomy)')
        out[int(cat['id'])] = cat
    return out


def iter_split_records(inp: CorpusInput, split: str, cats: Dict[int, dict],
                       tmp_dir: str,
                       with_instances: bool = True) -> Iterator[dict]:
    """Yield one record per image of ``annotations/<split>.json`` with its
    instances, category ids mapped to ``imdd_id``. Memory is bounded: the
    annotations are staged in a temporary sqlite3 table keyed by image id."""
    ann_file = inp.ann_file(split)
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'{ann_file}: annotation file missing')

    def to_imdd(cat_id: Any, what: str) -> Optional[int]:
        if cat_id is None:
            return None
        try:
            return int(cats[int(cat_id)]['imdd_id'])
        except (KeyError, ValueError, TypeError):
            raise ValueError(f'{ann_file}: {what} refers to category id '
                             f'{cat_id!r} not in categories.json')

    def make(img: dict) -> dict:
        try:
            file_name = img['file_name']
            image_id = int(img['id'])
        except (KeyError, ValueError, TypeError):
            raise ValueError(f'{ann_file}: image entry without a valid '
                             f'"id"/"file_name": {img!r:.200}')
        rec = {
            'file_name': file_name,
            'image_root': inp.image_root,
            'width': img.get('width'),
            'height': img.get('height'),
            'caption': img.get('caption', '') or '',
            'nouns': list(img.get('caption_nouns', img.get('nouns')) or []),
            'source': img.get('source') or inp.name,
            'split': img.get('split') or split,
            'is_normal': bool(img.get('is_normal', False)),
            'image_label': to_imdd(img.get('image_label'),
                                   f'image {file_name!r} image_label'),
            'original_id': image_id,
            'original_path': img.get('original_path', file_name),
            'license': img.get('license'),
        }
        if with_instances:  # kept as JSON text; the writer embeds it
            rec['instances'] = [
                RawJson(row[0]) for row in db.execute(
                    'SELECT data FROM ann WHERE image_id=? ORDER BY seq',
                    (image_id, ))
            ]
        return rec

    if not with_instances:
        for img in iter_json_array(ann_file, 'images'):
            yield make(img)
        return
    # One pass. Annotations go to sqlite (keyed by image id); images are
    # yielded as soon as all annotations are in - directly when the file
    # lists annotations first (as data_converters.base writes it), else
    # after being staged in sqlite too.
    db_path = osp.join(tmp_dir, 'annotations.sqlite')
    if osp.exists(db_path):
        os.remove(db_path)
    db = _open_db(db_path)
    try:
        db.execute('CREATE TABLE ann (image_id INTEGER, seq INTEGER, '
                   'data TEXT)')
        db.execute('CREATE TABLE img (seq INTEGER PRIMARY KEY, data TEXT)')
        batch: list = []
        staged = []
        anns_done = False
        n_ann = n_img = 0

        def finish_annotations() -> None:
            if batch:
                db.executemany('INSERT INTO ann VALUES (?,?,?)', batch)
                batch.clear()
            db.execute('CREATE INDEX ann_img ON ann (image_id, seq)')
            db.commit()

        for key, item in iter_json_arrays(ann_file,
                                          ('annotations', 'images')):
            if key == 'annotations':
                if item is END:
                    finish_annotations()
                    anns_done = True
                    continue
                inst = {
                    'category_id': to_imdd(item.get('category_id'),
                                           f'annotation {item.get("id")}'),
                    'bbox': item.get('bbox'),
                    'area': item.get('area'),
                    'segmentation': item.get('segmentation'),
                }
                if item.get('iscrowd'):
                    inst['iscrowd'] = 1
                batch.append((int(item['image_id']), n_ann, _dumps(inst)))
                n_ann += 1
                if len(batch) >= _BATCH:
                    db.executemany('INSERT INTO ann VALUES (?,?,?)', batch)
                    batch.clear()
            elif item is END:
                if staged:
                    db.executemany('INSERT INTO img VALUES (?,?)', staged)
                    staged.clear()
            elif anns_done:
                yield make(item)
            else:
                staged.append((n_img, _dumps(item)))
                n_img += 1
                if len(staged) >= _BATCH:
                    db.executemany('INSERT INTO img VALUES (?,?)', staged)
                    staged.clear()
        if not anns_done:  # no "annotations" key at all
            finish_annotations()
        if n_img:
            last = -1
            while True:  # page through the staged images
                rows = db.execute(
                    'SELECT seq, data FROM img WHERE seq > ? ORDER BY seq '
                    'LIMIT 1024', (last, )).fetchall()
                if not rows:
                    break
                for seq, data in rows:
                    yield make(json.loads(data))
                last = rows[-1][0]
    finally:
        db.close()
        if osp.exists(db_path):
            os.remove(db_path)


# --------------------------------------------------------------------------
# Sharded output
# --------------------------------------------------------------------------
class RawJson(str):
    """A JSON text that is written verbatim (saves a decode/encode)."""


def record_line(record: dict) -> str:
    """One shard line: the record as compact JSON with sorted keys, except
    ``instances``, which always comes last (so a record reads the same
    whether its instances were parsed or kept as raw JSON text)."""
    insts = record.get('instances')
    if insts is None:
        return _dumps(record)
    head = _dumps({k: v for k, v in record.items() if k != 'instances'})
    body = ','.join(i if isinstance(i, RawJson) else _dumps(i)
                    for i in insts)
    sep = ',' if len(head) > 2 else ''
    return f'{head[:-1]}{sep}"instances":[{body}]}}'


class ShardWriter:
    """Write JSONL shards of at most ``shard_size`` records.

    Each shard ``shard-NNNNN.jsonl`` is written to a temporary file and
    renamed when full, together with ``shard-NNNNN.idx`` holding the byte
    offset of each line as little-endian int64.
    """

    def __init__(self, shard_dir: str, shard_size: int = 10000):
        if shard_size < 1:
            raise ValueError(f'shard_size must be >= 1, got {shard_size}')
        self.shard_dir = shard_dir
        self.shard_size = shard_size
        self.shards: List[dict] = []
        self._f = None
        self._idx = None
        self._count = 0
        self._instances = 0
        self._offset = 0
        os.makedirs(shard_dir, exist_ok=True)

    def _paths(self) -> Tuple[str, str]:
        name = SHARD_PATTERN.format(len(self.shards))
        jsonl = osp.join(self.shard_dir, name)
        return jsonl, jsonl[:-len('.jsonl')] + '.idx'

    def write(self, record: dict) -> None:
        if self._f is None:
            jsonl, idx = self._paths()
            self._f = open(jsonl + '.tmp', 'wb')
            self._idx = open(idx + '.tmp', 'wb')
            self._count = self._instances = self._offset = 0
        line = (record_line(record) + '\n').encode('utf-8')
        self._idx.write(struct.pack('<q', self._offset))
        self._f.write(line)
        self._offset += len(line)
        self._count += 1
        self._instances += len(record.get('instances') or ())
        if self._count >= self.shard_size:
            self._close_shard()

    def _close_shard(self) -> None:
        jsonl, idx = self._paths()
        for handle in (self._f, self._idx):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        os.replace(jsonl + '.tmp', jsonl)
        os.replace(idx + '.tmp', idx)
        self.shards.append(
            dict(
                file=osp.join(osp.basename(self.shard_dir),
                              osp.basename(jsonl)),
                offsets=osp.join(osp.basename(self.shard_dir),
                                 osp.basename(idx)),
                num_images=self._count,
                num_instances=self._instances,
                num_bytes=self._offset))
        self._f = self._idx = None

    def close(self) -> List[dict]:
        if self._f is not None:
            self._close_shard()
        # drop shards a previous, longer run left behind
        keep = {osp.basename(s['file']) for s in self.shards}
        keep |= {osp.basename(s['offsets']) for s in self.shards}
        for fname in os.listdir(self.shard_dir):
            if fname.startswith('shard-') and fname not in keep:
                os.remove(osp.join(self.shard_dir, fname))
        return self.shards


class _JsonlWriter:
    """Small atomic JSONL writer for reports (duplicates, exclusions)."""

    def __init__(self, path: str):
        self.path = path
        self.tmp = f'{path}.tmp{os.getpid()}'
        self.f = open(self.tmp, 'w', encoding='utf-8')
        self.count = 0

    def write(self, obj: dict) -> None:
        self.f.write(_dumps(obj) + '\n')
        self.count += 1

    def close(self) -> None:
        self.f.close()
        os.replace(self.tmp, self.path)


# --------------------------------------------------------------------------
# The builder
# --------------------------------------------------------------------------
def _iter_blocks(it: Iterable[Any], size: int) -> Iterator[List[Any]]:
    block = []
    for item in it:
        block.append(item)
        if len(block) >= size:
            yield block
            block = []
    if block:
        yield block


def _hash_block(paths: List[str], pool: Optional[Any]) -> List[Tuple]:
    if pool is None:
        return [_hash_or_error(p) for p in paths]
    return pool.map(_hash_or_error, paths, chunksize=16)


def _merge_category(unified: Dict[int, dict], cat: dict, name: str) -> None:
    """Merge a source category into the unified one of its ``imdd_id`` (the
    global defect type): its name is the taxonomy's defect type; domains,
    materials and ``source:class`` names are collected (first-seen order)."""
    imdd_id = int(cat['imdd_id'])
    entry = unified.get(imdd_id)
    if entry is None:
        entry = unified[imdd_id] = {
            'id': imdd_id,
            'imdd_id': imdd_id,
            'name': cat.get('defect_type') or cat.get('name'),
            'defect_type': cat.get('defect_type') or cat.get('name'),
            'supercategory': 'defect',
            'domains': [],
            'materials': [],
            'source_classes': [],
            'sources': [],
        }
    for key, val in (('domains', cat.get('domain')),
                     ('materials', cat.get('material')),
                     ('source_classes', f'{name}:{cat.get("name")}'),
                     ('sources', name)):
        if val and val not in entry[key]:
            entry[key].append(val)


def build_corpus(inputs: Sequence[Union[CorpusInput, str]],
                 out_dir: str,
                 exclude: Sequence[str] = (),
                 exclude_files: Sequence[str] = (),
                 exclude_by_content: bool = True,
                 shard_size: int = 10000,
                 with_instances: bool = True,
                 nproc: int = 1,
                 on_error: str = 'raise',
                 block_size: int = 1024,
                 progress: bool = False) -> dict:
    """Merge converted datasets into a sharded corpus (see module doc).

    Args:
        inputs: converter output folders (``CorpusInput`` or ``[NAME=]DIR``),
            in priority order: the first copy of a duplicate is kept.
        out_dir: corpus folder (created; previous shards are replaced).
        exclude: ``dataset:split`` specs.
        exclude_files: files of hashes / image paths / specs, one a line.
        exclude_by_content: also exclude byte-identical copies of excluded
            images found in other splits or sources.
        shard_size: maximum images per shard.
        with_instances: keep instances (boxes/masks) in the records.
        nproc: processes for hashing.
        on_error: ``'raise'`` or ``'skip'`` for unreadable images; skipped
            images are listed in ``errors.jsonl``.
        block_size: images hashed per block (bounds memory).
        progress: show a tqdm progress bar.

    Returns:
        dict: the index written to ``out_dir/index.json``.
    """
    if on_error not in ('raise', 'skip'):
        raise ValueError(f'on_error must be "raise" or "skip", got '
                         f'{on_error!r}')
    inputs = [i if isinstance(i, CorpusInput) else CorpusInput.parse(i)
              for i in inputs]
    names = [i.name for i in inputs]
    if len(set(names)) != len(names):
        raise ValueError(f'input names must be unique, got {names}')
    exc = Exclusions.build(exclude, exclude_files)
    out_dir = osp.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix='.corpus_tmp_', dir=out_dir)
    pool = Pool(nproc) if nproc > 1 else None
    pbar = None
    if progress:
        from tqdm import tqdm
        pbar = tqdm(unit='img', desc='corpus')
    try:
        db = _open_db(osp.join(tmp_dir, 'hashes.sqlite'))
        # 32-byte BLOB keys, clustered (WITHOUT ROWID): half the size of
        # hex text, so more of the set stays in the bounded page cache
        db.execute('CREATE TABLE excluded (hash BLOB PRIMARY KEY) '
                   'WITHOUT ROWID')
        db.execute('CREATE TABLE seen (hash BLOB PRIMARY KEY, id INTEGER, '
                   'source TEXT, file_name TEXT) WITHOUT ROWID')
        db.executemany('INSERT OR IGNORE INTO excluded VALUES (?)',
                       [(bytes.fromhex(h), ) for h in sorted(exc.hashes)])
        all_cats = {inp.name: load_categories(inp) for inp in inputs}

        # pass 1: hashes of excluded images (spec or path), so copies of
        # evaluation images elsewhere are caught too.
        if exclude_by_content and (exc.specs or exc.abs_paths
                                   or exc.rel_paths):
            for inp in inputs:
                for split in inp.splits:
                    recs = iter_split_records(inp, split, all_cats[inp.name],
                                              tmp_dir, with_instances=False)
                    paths = (
                        osp.join(r['image_root'], r['file_name'])
                        for r in recs
                        if exc.split_excluded(inp, r['source'], r['split'])
                        or exc.path_excluded(
                            osp.join(r['image_root'], r['file_name']),
                            r['file_name']))
                    for block in _iter_blocks(paths, block_size):
                        rows = []
                        for path, (digest, err) in zip(
                                block, _hash_block(block, pool)):
                            if digest is None:
                                if on_error == 'raise':
                                    raise OSError(err)
                                continue
                            rows.append((bytes.fromhex(digest), ))
                        db.executemany(
                            'INSERT OR IGNORE INTO excluded VALUES (?)', rows)
            db.commit()

        # pass 2: stream, exclude, de-duplicate, write.
        any_excluded = db.execute(
            'SELECT 1 FROM excluded LIMIT 1').fetchone() is not None
        shard_writer = ShardWriter(osp.join(out_dir, 'shards'), shard_size)
        dup_writer = _JsonlWriter(osp.join(out_dir, 'duplicates.jsonl'))
        exc_writer = _JsonlWriter(osp.join(out_dir, 'excluded.jsonl'))
        err_writer = _JsonlWriter(osp.join(out_dir, 'errors.jsonl'))
        unified: Dict[int, dict] = {}
        stats: Dict[str, dict] = {}
        next_id = 1
        for inp in inputs:
            cats = all_cats[inp.name]
            for cat in cats.values():
                _merge_category(unified, cat, inp.name)
            st = stats.setdefault(
                inp.name,
                dict(
                    out_dir=osp.basename(inp.out_dir),
                    splits=list(inp.splits),
                    read=0,
                    written=0,
                    normal=0,
                    instances=0,
                    duplicates=0,
                    excluded=0,
                    errors=0))
            for split in inp.splits:
                recs = iter_split_records(inp, split, cats, tmp_dir,
                                          with_instances)
                for block in _iter_blocks(recs, block_size):
                    todo = []
                    for rec in block:
                        st['read'] += 1
                        path = osp.join(rec['image_root'], rec['file_name'])
                        why = exc.split_excluded(inp, rec['source'],
                                                 rec['split'])
                        why = why or exc.path_excluded(path, rec['file_name'])
                        if why:
                            st['excluded'] += 1
                            exc_writer.write(
                                dict(source=rec['source'],
                                     split=rec['split'],
                                     file_name=rec['file_name'],
                                     reason=why))
                            continue
                        todo.append((rec, path))
                    hashes = _hash_block([p for _, p in todo], pool)
                    for (rec, path), (digest, err) in zip(todo, hashes):
                        if digest is None:
                            if on_error == 'raise':
                                raise OSError(err)
                            st['errors'] += 1
                            err_writer.write(
                                dict(source=rec['source'],
                                     file_name=rec['file_name'], error=err))
                            continue
                        key = bytes.fromhex(digest)
                        if any_excluded and db.execute(
                                'SELECT 1 FROM excluded WHERE hash=?',
                                (key, )).fetchone():
                            st['excluded'] += 1
                            exc_writer.write(
                                dict(source=rec['source'],
                                     split=rec['split'],
                                     file_name=rec['file_name'],
                                     reason='content', sha256=digest))
                            continue
                        cur = db.execute(
                            'INSERT OR IGNORE INTO seen VALUES (?,?,?,?)',
                            (key, next_id, rec['source'],
                             rec['file_name']))
                        if cur.rowcount == 0:  # hash seen before
                            row = db.execute(
                                'SELECT id, source, file_name FROM seen '
                                'WHERE hash=?', (key, )).fetchone()
                            st['duplicates'] += 1
                            dup_writer.write(
                                dict(source=rec['source'],
                                     split=rec['split'],
                                     file_name=rec['file_name'],
                                     sha256=digest,
                                     kept_id=row[0],
                                     kept_source=row[1],
                                     kept_file_name=row[2]))
                            continue
                        rec['id'] = next_id
                        rec['sha256'] = digest
                        next_id += 1
                        st['written'] += 1
                        st['normal'] += int(rec['is_normal'])
                        st['instances'] += len(rec.get('instances') or ())
                        # relocatable: the root relative to the corpus
                        rec['image_root'] = _relative_root(
                            rec['image_root'], out_dir)
                        shard_writer.write(rec)
                    if pbar is not None:
                        pbar.update(len(block))
                db.commit()
        shards = shard_writer.close()
        for writer in (dup_writer, exc_writer, err_writer):
            writer.close()
        db.close()

        categories = [unified[k] for k in sorted(unified)]
        index = dict(
            version=INDEX_VERSION,
            num_images=next_id - 1,
            num_instances=sum(s['num_instances'] for s in shards),
            num_normal=sum(s['normal'] for s in stats.values()),
            shard_size=shard_size,
            with_instances=with_instances,
            shards=shards,
            categories=categories,
            sources=stats,
            exclusions=dict(
                specs=[f'{a}:{b}' for a, b in exc.specs],
                files=[osp.basename(f) for f in exclude_files],
                by_content=exclude_by_content,
                num_excluded=exc_writer.count),
            num_duplicates=dup_writer.count,
            num_errors=err_writer.count)
        _atomic_write_text(
            osp.join(out_dir, 'categories.json'),
            json.dumps(categories, indent=2, ensure_ascii=False) + '\n')
        _atomic_write_text(
            osp.join(out_dir, 'index.json'),
            json.dumps(index, indent=2, ensure_ascii=False) + '\n')
        return index
    finally:
        if pbar is not None:
            pbar.close()
        if pool is not None:
            pool.close()
            pool.join()
        shutil.rmtree(tmp_dir, ignore_errors=True)


# --------------------------------------------------------------------------
# Reading a corpus
# --------------------------------------------------------------------------
def load_index(index_path: str) -> dict:
    """Read ``index.json`` (or the corpus folder holding it)."""
    if osp.isdir(index_path):
        index_path = osp.join(index_path, 'index.json')
    with open(index_path, encoding='utf-8') as f:
        index = json.load(f)
    if index.get('version') != INDEX_VERSION or 'shards' not in index:
        raise ValueError(f'{index_path}: not an IMDD corpus index '
                         f'(version {index.get("version")!r})')
    return index


def iter_corpus(index_path: str) -> Iterator[dict]:
    """Stream every record of a corpus, shard by shard."""
    if osp.isdir(index_path):
        index_path = osp.join(index_path, 'index.json')
    index = load_index(index_path)
    root = osp.dirname(osp.abspath(index_path))
    for shard in index['shards']:
        with open(osp.join(root, shard['file']), encoding='utf-8') as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)


# --------------------------------------------------------------------------
# Few-shot sampling
# --------------------------------------------------------------------------
def primary_class(record: dict) -> Optional[Union[int, str]]:
    """Class of an image for few-shot sampling: ``'normal'`` for normal
    images, else ``image_label``, else the category of the largest instance
    (ties: smallest id); ``None`` for a defective image without labels."""
    if record.get('is_normal'):
        return NORMAL_CLASS
    if record.get('image_label') is not None:
        return int(record['image_label'])
    best = None
    for inst in record.get('instances') or ():
        area = inst.get('area')
        if area is None and inst.get('bbox'):
            area = inst['bbox'][2] * inst['bbox'][3]
        key = (-(area or 0.0), int(inst['category_id']))
        if best is None or key < best:
            best = key
    return None if best is None else best[1]


def _sample_key(seed: int, record: dict) -> Tuple[int, str]:
    ident = f'{record.get("source")}\0{record["file_name"]}'
    digest = hashlib.sha256(f'{seed}\0{ident}'.encode('utf-8')).digest()
    return int.from_bytes(digest[:16], 'big'), ident


class FewShotSampler:
    """Streaming N-per-class sampler (bottom-N of a seeded hash per class).

    Feed records with :meth:`add`; :meth:`selected` returns the chosen keys.
    Memory is ``O(num_classes * n)``.

    Args:
        n: images per class.
        seed: sampling seed.
        include_normal: also sample ``n`` normal images.
    """

    def __init__(self, n: int, seed: int = 0, include_normal: bool = False):
        if n < 1:
            raise ValueError(f'few-shot n must be >= 1, got {n}')
        self.n = n
        self.seed = seed
        self.include_normal = include_normal
        self._heaps: Dict[Any, list] = {}

    def add(self, record: dict, key: Any) -> None:
        cls = primary_class(record)
        if cls is None or (cls == NORMAL_CLASS and not self.include_normal):
            return
        rank, ident = _sample_key(self.seed, record)
        heap = self._heaps.setdefault(cls, [])
        item = (-rank, ident, key)  # max-heap on rank
        if len(heap) < self.n:
            heapq.heappush(heap, item)
        elif item > heap[0]:  # smaller rank than the current largest
            heapq.heapreplace(heap, item)

    def selected(self) -> Dict[Any, List[Any]]:
        """Class -> chosen keys, ordered by rank."""
        return {
            cls: [k for _, _, k in sorted(heap, reverse=True)]
            for cls, heap in self._heaps.items()
        }


def few_shot_corpus(index_path: str,
                    out_dir: str,
                    n: int,
                    seed: int = 0,
                    include_normal: bool = False,
                    shard_size: Optional[int] = None) -> dict:
    """Write the few-shot subset (``n`` per class) of a corpus as a new
    sharded corpus in ``out_dir`` (records keep their global ids and their
    order). Two streaming passes; memory ``O(num_classes * n)``."""
    if osp.isdir(index_path):
        index_path = osp.join(index_path, 'index.json')
    index = load_index(index_path)
    sampler = FewShotSampler(n, seed, include_normal)
    for rec in iter_corpus(index_path):
        sampler.add(rec, rec['id'])
    chosen = sampler.selected()
    keep = {k for keys in chosen.values() for k in keys}
    out_dir = osp.abspath(out_dir)
    writer = ShardWriter(
        osp.join(out_dir, 'shards'), shard_size or index['shard_size'])
    per_source: Dict[str, int] = {}
    for rec in iter_corpus(index_path):
        if rec['id'] in keep:
            writer.write(rec)
            per_source[rec['source']] = per_source.get(rec['source'], 0) + 1
    shards = writer.close()
    used = {c for c in chosen if c != NORMAL_CLASS}
    sub = dict(
        version=INDEX_VERSION,
        num_images=len(keep),
        num_instances=sum(s['num_instances'] for s in shards),
        num_normal=len(chosen.get(NORMAL_CLASS, [])),
        shard_size=writer.shard_size,
        with_instances=index.get('with_instances', True),
        shards=shards,
        categories=[c for c in index['categories'] if c['id'] in used],
        sources={k: dict(written=v) for k, v in sorted(per_source.items())},
        few_shot=dict(
            n=n,
            seed=seed,
            include_normal=include_normal,
            parent=osp.relpath(osp.dirname(osp.abspath(index_path)),
                               out_dir),
            per_class={str(c): len(v)
                       for c, v in sorted(chosen.items(), key=lambda kv:
                                          str(kv[0]))}))
    _atomic_write_text(
        osp.join(out_dir, 'categories.json'),
        json.dumps(sub['categories'], indent=2, ensure_ascii=False) + '\n')
    _atomic_write_text(
        osp.join(out_dir, 'index.json'),
        json.dumps(sub, indent=2, ensure_ascii=False) + '\n')
    return sub


def few_shot_coco(ann_file: str,
                  out_file: str,
                  n: int,
                  seed: int = 0,
                  include_normal: bool = False) -> dict:
    """Few-shot subset (``n`` per class) of one COCO file written by a
    converter, e.g. a dataset's train split for the data-efficiency study
    (paper Fig. 11, N in {25, 50, 100, 200, 350}). Class = ``image_label``,
    else the largest instance's category (local ids). Written atomically.

    Returns:
        dict: ``{'per_class': {cls: count}, 'num_images': int}``.
    """
    with open(ann_file, encoding='utf-8') as f:
        coco = json.load(f)
    anns_by_img: Dict[int, list] = {}
    for ann in coco.get('annotations', []):
        anns_by_img.setdefault(ann['image_id'], []).append(ann)
    sampler = FewShotSampler(n, seed, include_normal)
    for img in coco.get('images', []):
        rec = dict(
            file_name=img['file_name'],
            source=img.get('source'),
            is_normal=img.get('is_normal', False),
            image_label=img.get('image_label'),
            instances=anns_by_img.get(img['id'], []))
        sampler.add(rec, img['id'])
    chosen = sampler.selected()
    keep = {k for keys in chosen.values() for k in keys}
    out = dict(coco)
    out['images'] = [im for im in coco.get('images', []) if im['id'] in keep]
    out['annotations'] = [
        a for a in coco.get('annotations', []) if a['image_id'] in keep
    ]
    info = dict(out.get('info') or {})
    info['few_shot'] = dict(n=n, seed=seed, include_normal=include_normal)
    out['info'] = info
    _atomic_write_text(out_file, json.dumps(out, ensure_ascii=False))
    return dict(
        num_images=len(keep),
        per_class={str(c): len(v) for c, v in chosen.items()})
