# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""On-disk cache of frozen diffusion features (the Stage-2 speed lever).

With fixed seeded noise and a frozen VAE, U-Net and captioner, the features
of an image are a pure function of (image pixels, frozen weights, backbone
settings) (docs/DESIGN.md, "Data flow"). :class:`FeatureCache` stores them so
that a Stage-2 epoch after the first runs only the trainable head.

Keys and namespaces:

* the **namespace** is a SHA-256 of the frozen networks' parameters and
  buffers (:func:`module_fingerprint`) and of every setting that changes the
  features (timestep, noise seed and mode, taps, conditioning mode, ...): a
  changed frozen weight or setting lands in a new folder, never on a stale
  entry;
* the **key** of a sample is a SHA-256 of the exact network input (the
  normalised, padded pixel tensor, its shape and dtype). Every transform
  that changes pixels (resize, crop, colour jitter, ...) therefore re-keys
  the entry by construction; the transform's parameters need no separate
  bookkeeping. Horizontal / vertical flips are undone before hashing and
  applied to the cached maps instead (``flip_features``), so both flips of an
  image share one entry.

Storage (safe under several dataloader workers, processes and ranks):

* content-addressed files ``<cache_dir>/<namespace>/<kk>/<key>.pt``, written
  to a unique temporary name and published with an atomic ``os.replace``: a
  reader sees a whole entry or none; two writers of one key write the same
  bytes;
* a bounded size (``max_bytes``): when a process has written more than a
  tenth of the bound since its last check, it takes an exclusive ``flock`` on
  ``<cache_dir>/.evict.lock`` and deletes the least recently used entries
  (mtime, refreshed on every hit) until the cache holds 90 % of the bound;
* an entry that vanished (evicted by another process) or cannot be read is a
  miss and is recomputed, never an error;
* an in-memory LRU of at most ``memory_bytes`` (per process, default
  512 MiB, 0 disables) on top of the files: a hit there skips opening and
  deserialising the file (the file's mtime is still refreshed, so the disk
  LRU sees the use). Entries are content-addressed, so a memory copy of an
  entry that another process has evicted from disk is still exact; entries
  this process evicts from disk leave its memory too.
"""
import fcntl
import hashlib
import json
import os
import pickle
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

CACHE_FORMAT = 'imdd-feature-cache-v1'
FLIP_DIMS = {'horizontal': (-1, ), 'vertical': (-2, ),
             'diagonal': (-2, -1)}
_DTYPES = {'fp32': torch.float32, 'fp16': torch.float16,
           'bf16': torch.bfloat16}


def _update_tensor(h, t: Tensor) -> None:
    t = t.detach()
    if t.device.type != 'cpu':
        t = t.cpu()
    t = t.contiguous()
    h.update(f'{tuple(t.shape)}|{t.dtype}|'.encode())
    # a uint8 view hashes any dtype (bf16 has no numpy equivalent); hashlib
    # reads the array's buffer in place (no copy)
    h.update(t.reshape(-1).view(torch.uint8).numpy())


def module_fingerprint(named_modules: Iterable[Tuple[str, nn.Module]]) -> str:
    """SHA-256 of the names, shapes, dtypes and values of every parameter and
    buffer of the given modules (order-independent over the modules).

    Args:
        named_modules (Iterable[tuple[str, nn.Module]]): e.g.
            ``backbone.named_frozen_modules()``.

    Returns:
        str: 64 hex digits.
    """
    h = hashlib.sha256()
    for name, module in sorted(named_modules, key=lambda kv: kv[0]):
        h.update(f'module:{name}:{type(module).__name__}|'.encode())
        tensors = list(module.named_parameters()) + list(
            module.named_buffers())
        for pname, t in sorted(tensors, key=lambda kv: kv[0]):
            h.update(f'{pname}|'.encode())
            _update_tensor(h, t)
    return h.hexdigest()


def tensor_key(x: Tensor) -> str:
    """SHA-256 of one network input (values, shape and dtype)."""
    h = hashlib.sha256()
    _update_tensor(h, x)
    return h.hexdigest()


def flip_maps(maps: Dict[str, Tensor], direction: str) -> Dict[str, Tensor]:
    """Flip every (..., H, W) map of a dict like mmdet's ``RandomFlip``."""
    if direction not in FLIP_DIMS:
        raise ValueError(f'unknown flip direction {direction!r}; expected '
                         f'one of {sorted(FLIP_DIMS)}')
    dims = FLIP_DIMS[direction]
    return {k: v.flip(dims) for k, v in maps.items()}


class FeatureCache:
    """Bounded, multi-process-safe on-disk store of per-image feature dicts.

    Args:
        cache_dir (str | Path): Root folder (created).
        max_bytes (int): Size bound of the whole cache in bytes.
            Defaults to 4 GiB.
        dtype (str): Storage dtype, ``'fp32'`` (exact, default), ``'fp16'``
            or ``'bf16'`` (half the disk; entries are cast back to the
            requested dtype on load).
        memory_bytes (int): Size bound of this process's in-memory LRU of
            entries (held at the storage dtype). Defaults to 512 MiB; 0
            reads every hit from disk.

    Example:
        >>> cache = FeatureCache('/tmp/fc', max_bytes=2**20)
        >>> ns = cache.namespace(dict(weights='abc', timestep=50))
        >>> cache.put(ns, 'k' * 64, {'s8': torch.ones(4, 2, 2)})
        >>> cache.get(ns, 'k' * 64)['s8'].shape
        torch.Size([4, 2, 2])
    """

    def __init__(self, cache_dir, max_bytes: int = 4 * 2**30,
                 dtype: str = 'fp32', memory_bytes: int = 512 * 2**20) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f'dtype must be one of {sorted(_DTYPES)}, got '
                             f'{dtype!r}')
        if int(max_bytes) <= 0:
            raise ValueError(f'max_bytes must be > 0, got {max_bytes}')
        if int(memory_bytes) < 0:
            raise ValueError(f'memory_bytes must be >= 0, got {memory_bytes}')
        self.root = Path(cache_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self.memory_bytes = int(memory_bytes)
        self.dtype = _DTYPES[dtype]
        self._written_since_check = 0
        # path -> maps at the storage dtype, least recently used first
        self._memory: 'OrderedDict[Path, Dict[str, Tensor]]' = OrderedDict()
        self._memory_size = 0
        self.hits = 0
        self.memory_hits = 0
        self.misses = 0

    # -- identity -----------------------------------------------------------
    def namespace(self, identity: dict) -> str:
        """Folder name of one feature identity; writes its description to
        ``<namespace>/identity.json`` (atomically) for humans.

        Args:
            identity (dict): JSON-serialisable description of everything the
                features depend on besides the image.

        Returns:
            str: 32 hex digits.
        """
        text = json.dumps(dict(format=CACHE_FORMAT, **identity),
                          sort_keys=True, default=str)
        ns = hashlib.sha256(text.encode()).hexdigest()[:32]
        folder = self.root / ns
        meta = folder / 'identity.json'
        if not meta.exists():
            folder.mkdir(parents=True, exist_ok=True)
            self._atomic_write_bytes(meta, (text + '\n').encode())
        return ns

    # -- entries ------------------------------------------------------------
    def path(self, ns: str, key: str) -> Path:
        return self.root / ns / key[:2] / f'{key}.pt'

    def get(self, ns: str, key: str,
            dtype: torch.dtype = torch.float32
            ) -> Optional[Dict[str, Tensor]]:
        """The stored maps of ``key`` or None (missing, evicted, unreadable).
        A hit refreshes the entry's mtime (LRU eviction). The returned
        tensors are the caller's own (never views of the memory LRU)."""
        path = self.path(ns, key)
        maps = self._memory.get(path)
        if maps is not None:
            self._memory.move_to_end(path)
            try:
                os.utime(path)
            except OSError:  # evicted from disk by another process
                pass
            self.hits += 1
            self.memory_hits += 1
            return {k: v.to(dtype, copy=True) for k, v in maps.items()}
        try:
            data = torch.load(path, map_location='cpu', weights_only=True)
            os.utime(path)
        except (OSError, RuntimeError, EOFError, ValueError,
                pickle.UnpicklingError):
            self.misses += 1
            return None
        if not isinstance(data, dict) or data.get('key') != key:
            self.misses += 1
            return None
        self.hits += 1
        self._remember(path, data['maps'])
        return {k: v.to(dtype, copy=True) for k, v in data['maps'].items()}

    def _remember(self, path: Path, maps: Dict[str, Tensor]) -> None:
        """Add one entry (storage dtype) to the memory LRU, dropping the
        least recently used ones beyond ``memory_bytes``."""
        size = sum(v.numel() * v.element_size() for v in maps.values())
        if size > self.memory_bytes:
            return
        self._forget(path)
        self._memory[path] = maps
        self._memory_size += size
        while self._memory_size > self.memory_bytes:
            _, old = self._memory.popitem(last=False)
            self._memory_size -= sum(v.numel() * v.element_size()
                                     for v in old.values())

    def _forget(self, path: Path) -> None:
        old = self._memory.pop(path, None)
        if old is not None:
            self._memory_size -= sum(v.numel() * v.element_size()
                                     for v in old.values())

    def put(self, ns: str, key: str, maps: Dict[str, Tensor]) -> None:
        """Store one sample's maps (each (C, H, W)) under ``key``."""
        path = self.path(ns, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = dict(key=key, maps={
            k: v.detach().to('cpu', self.dtype).contiguous().clone()
            for k, v in maps.items()})
        tmp = path.with_name(f'.{key}.{os.getpid()}.{uuid.uuid4().hex}.tmp')
        try:
            torch.save(payload, tmp)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        self._remember(path, payload['maps'])
        self._written_since_check += path.stat().st_size \
            if path.exists() else 0
        if self._written_since_check > self.max_bytes // 10:
            self.evict()

    def _atomic_write_bytes(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f'.{path.name}.{os.getpid()}.'
                             f'{uuid.uuid4().hex}.tmp')
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def entries(self) -> Sequence[Tuple[float, int, Path]]:
        """(mtime, size, path) of every stored entry."""
        out = []
        for path in self.root.glob('*/*/*.pt'):
            try:
                st = path.stat()
            except OSError:  # removed meanwhile
                continue
            out.append((st.st_mtime, st.st_size, path))
        return out

    def size_bytes(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def evict(self) -> int:
        """Delete least recently used entries until the cache holds at most
        90 % of ``max_bytes`` (under an exclusive lock; other processes
        evicting at the same time wait). Returns the number deleted."""
        self._written_since_check = 0
        removed = 0
        with open(self.root / '.evict.lock', 'a+') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                entries = sorted(self.entries(), key=lambda e: e[0])
                total = sum(size for _, size, _ in entries)
                target = int(self.max_bytes * 0.9)
                for _, size, path in entries:
                    if total <= target:
                        break
                    try:
                        path.unlink()
                        removed += 1
                    except FileNotFoundError:
                        pass
                    self._forget(path)
                    total -= size
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return removed
