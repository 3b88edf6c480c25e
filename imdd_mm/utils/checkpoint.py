# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Safe loading of mmengine checkpoints under torch >= 2.6.

torch >= 2.6 loads with ``weights_only=True`` by default, which rejects what
mmengine puts into every checkpoint (its ``MessageHub`` with
``HistoryBuffer`` objects, numpy scalars and arrays, ...), so ``--resume``
and ``load_from`` fail. Switching ``weights_only`` off globally would let any
checkpoint run arbitrary code. Instead, :func:`safe_torch_load` unpickles
through :class:`RestrictedUnpickler`, whose ``find_class`` only resolves an
allow-list: the containers and numpy types mmengine writes, its
``HistoryBuffer`` and the ``getattr(HistoryBuffer, '<statistic>')`` calls
that class pickles. Anything else raises :class:`UnsafeCheckpointError`
naming the file and the refused global.

:func:`register_safe_checkpoint_loader` makes mmengine's ``CheckpointLoader``
use it for local files and ``http(s)://`` URLs, which covers ``--resume``,
``load_from`` and ``mmengine.runner.load_checkpoint``.
"""
import io
import os
import pickle
from typing import Any, Optional

import torch

#: (module, name) pairs a checkpoint may reference, besides torch's own
#: tensor/storage rebuild functions, which torch resolves itself.
SAFE_GLOBALS = {
    ('collections', 'OrderedDict'),
    ('collections', 'defaultdict'),
    ('builtins', 'set'),
    ('builtins', 'frozenset'),
    ('builtins', 'slice'),
    ('builtins', 'complex'),
    ('builtins', 'bytes'),  # b'' under pickle protocol 2 (empty buffers)
    ('builtins', 'bytearray'),
    ('_codecs', 'encode'),
    ('numpy', 'dtype'),
    ('numpy', 'ndarray'),
    ('numpy.core.multiarray', '_reconstruct'),
    ('numpy.core.multiarray', 'scalar'),
    ('numpy._core.multiarray', '_reconstruct'),
    ('numpy._core.multiarray', 'scalar'),
    ('mmengine.logging.history_buffer', 'HistoryBuffer'),
    ('mmengine.config.config', 'ConfigDict'),
    ('mmengine.structures.instance_data', 'InstanceData'),
    ('datetime', 'datetime'),
    ('datetime', 'timedelta'),
}
#: numpy scalar types pickled by class (``numpy.float64`` etc.).
SAFE_MODULE_PREFIXES = ('numpy.dtypes',)
SAFE_NUMPY_SCALARS = {
    'bool_', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32',
    'uint64', 'float16', 'float32', 'float64', 'longlong', 'ulonglong'
}
#: torch names needed for tensors, storages and parameters.
SAFE_TORCH_PREFIXES = ('torch._utils', 'torch.storage', 'torch._tensor')
SAFE_TORCH_NAMES = {
    'Size', 'device', 'dtype', 'float32', 'float16', 'bfloat16', 'float64',
    'int64', 'int32', 'int16', 'int8', 'uint8', 'bool', 'BoolStorage',
    'ByteStorage', 'CharStorage', 'ShortStorage', 'IntStorage',
    'LongStorage', 'HalfStorage', 'FloatStorage', 'DoubleStorage',
    'BFloat16Storage', 'Tensor', 'nn.parameter.Parameter'
}


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint references a Python object outside the allow-list."""


def _is_safe(module: str, name: str) -> bool:
    if (module, name) in SAFE_GLOBALS:
        return True
    if module == 'numpy' and name in SAFE_NUMPY_SCALARS:
        return True
    if module.startswith(SAFE_MODULE_PREFIXES):
        return True
    if module == 'torch' and name in SAFE_TORCH_NAMES:
        return True
    if module == 'torch.nn.parameter' and name == 'Parameter':
        return True
    return module.startswith(SAFE_TORCH_PREFIXES) and name.startswith(
        ('_rebuild', '_load_from_bytes', 'UntypedStorage', 'TypedStorage'))


def _safe_getattr(obj: Any, name: str) -> Any:
    """``getattr`` limited to public attributes of allow-listed classes
    (``HistoryBuffer`` pickles ``getattr(HistoryBuffer, 'mean')``)."""
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and not name.startswith('_'):
        return getattr(obj, name)
    raise UnsafeCheckpointError(
        f'refused getattr({obj!r}, {name!r}): only public attributes of '
        'mmengine.logging.HistoryBuffer are allowed in checkpoints')


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` resolves only allow-listed names."""

    source: str = '<checkpoint>'

    def find_class(self, module: str, name: str) -> Any:
        if module in ('builtins', '__builtin__') and name == 'getattr':
            return _safe_getattr
        if module == '__builtin__':
            module = 'builtins'
        if _is_safe(module, name):
            return super().find_class(module, name)
        raise UnsafeCheckpointError(
            f'{self.source}: refuses to unpickle the global {module}.{name}, '
            'which is not in imdd_mm\'s checkpoint allow-list '
            '(imdd_mm.utils.checkpoint.SAFE_GLOBALS). If you trust this '
            'file, load it with torch.load(..., weights_only=False) '
            'yourself, or add the name to SAFE_GLOBALS.')


class _RestrictedPickleModule:
    """A ``pickle_module`` for ``torch.load`` built on
    :class:`RestrictedUnpickler`; ``source`` names the file in errors."""

    def __init__(self, source: str) -> None:
        outer_source = source

        class Unpickler(RestrictedUnpickler):
            source = outer_source

        self.Unpickler = Unpickler
        self.UnpicklingError = pickle.UnpicklingError
        self.__name__ = 'imdd_mm_restricted_pickle'

    def load(self, file, **kwargs):
        return self.Unpickler(file, **kwargs).load()

    def loads(self, data, **kwargs):
        return self.Unpickler(io.BytesIO(data), **kwargs).load()


def safe_torch_load(file, map_location: Optional[Any] = None,
                    source: Optional[str] = None,
                    mmap: bool = False) -> Any:
    """``torch.load`` through :class:`RestrictedUnpickler`.

    Args:
        file (str | file-like): The checkpoint.
        map_location: As for ``torch.load``.
        source (str, optional): Name used in error messages; defaults to
            ``file`` when it is a path.
        mmap (bool): Memory-map the tensors (zip checkpoints only), e.g.
            to read only the ``meta`` of a large file.

    Returns:
        The unpickled checkpoint.

    Raises:
        UnsafeCheckpointError: The file references a global outside the
            allow-list.
    """
    if source is None:
        source = os.fspath(file) if isinstance(file,
                                               (str, os.PathLike)) else \
            '<checkpoint>'
    return torch.load(
        file,
        map_location=map_location,
        weights_only=False,
        mmap=mmap,
        pickle_module=_RestrictedPickleModule(source))


def _load_from_local(filename: str, map_location=None) -> Any:
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_torch_load(filename, map_location=map_location)


def _load_from_http(filename: str, map_location=None, model_dir=None) -> Any:
    """Download through mmengine's cache, then load safely."""
    from torch.hub import download_url_to_file, get_dir
    model_dir = model_dir or os.path.join(get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached = os.path.join(model_dir, os.path.basename(filename.split('?')[0]))
    if not os.path.exists(cached):
        download_url_to_file(filename, cached)
    return safe_torch_load(cached, map_location=map_location, source=filename)


def register_safe_checkpoint_loader() -> None:
    """Route mmengine's local and http(s) checkpoint loading through
    :func:`safe_torch_load`. Idempotent."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(
        prefixes='', loader=_load_from_local, force=True)
    CheckpointLoader.register_scheme(
        prefixes=['http://', 'https://'], loader=_load_from_http, force=True)
