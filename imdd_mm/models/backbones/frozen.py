# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Holding frozen sub-networks outside the module tree.

The frozen parts of imdd-mm (diffusion U-Net and VAE in Stage 2, the CLIP
image tower of the implicit captioner, the text towers) must never reach the
optimizer, the checkpoints or DDP's parameter broadcast, yet they must follow
the owner through ``.to()``, ``.cuda()``, ``.half()`` and must stay in
``eval()`` mode. :class:`FrozenModulesMixin` keeps them in a plain dict (so
``parameters()``, ``named_modules()``, ``state_dict()``, ``train()`` and
``apply()`` do not see them), forwards ``_apply`` to them and exposes them as
attributes (``self.unet`` ...).

A checkpoint of the owner therefore holds only its trainable part, and
``load_state_dict(strict=True)`` of such a checkpoint works because no frozen
key is expected. Since the weights of a frozen network are not in the
checkpoint, each one carries a *source record* (where its weights came from,
see :mod:`imdd_mm.utils.provenance`): :meth:`set_frozen_source` stores it and
:meth:`frozen_sources` collects them over the owner and everything below it,
with dotted names (``'backbone.vae'``, ``'panoptic_head.text_encoder.tower'``).

Example:
    >>> import torch.nn as nn
    >>> class Owner(FrozenModulesMixin, nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.head = nn.Linear(4, 2)
    ...         self.add_frozen_module('tower', nn.Linear(4, 4))
    >>> m = Owner()
    >>> sorted(m.state_dict())
    ['head.bias', 'head.weight']
    >>> m.tower.weight.requires_grad
    False
"""
import contextlib
from typing import Dict, Iterator, Optional

import torch
import torch.nn as nn

_FROZEN_ATTR = '_imdd_frozen_modules'
_SOURCES_ATTR = '_imdd_frozen_sources'


def freeze_module(module: nn.Module) -> nn.Module:
    """Set ``requires_grad=False`` on all parameters and switch to eval."""
    module.requires_grad_(False)
    module.eval()
    return module


@contextlib.contextmanager
def seeded_init(seed: Optional[int]):
    """Run a block with a fixed CPU RNG state (restored afterwards).

    Used for randomly initialised frozen networks: every rank and every rerun
    builds bit-identical weights even though they are never broadcast.
    ``seed=None`` uses (and advances) the global RNG.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


class FrozenModulesMixin:
    """Mixin for ``nn.Module`` subclasses owning frozen, hidden sub-networks.

    Put it before ``nn.Module`` (or an mmengine ``BaseModule``) in the bases.
    Call :meth:`add_frozen_module` after ``super().__init__()``.
    """

    # -- registration -----------------------------------------------------
    def _frozen_dict(self) -> Dict[str, nn.Module]:
        d = self.__dict__.get(_FROZEN_ATTR)
        if d is None:
            d = {}
            self.__dict__[_FROZEN_ATTR] = d
        return d

    def add_frozen_module(self, name: str, module: Optional[nn.Module]):
        """Hold ``module`` frozen (no grad, eval) and hidden from the tree.

        Args:
            name (str): attribute name under which it is reachable.
            module (nn.Module | None): the network; ``None`` removes it.
        """
        if name in self._modules or name in self._parameters:
            raise KeyError(f'{name!r} is already a registered child of '
                           f'{type(self).__name__}')
        frozen = self._frozen_dict()
        if module is None:
            frozen.pop(name, None)
            return
        device = self._tracker_device()
        freeze_module(module)
        if device is not None and device.type != 'meta':
            module.to(device)
        frozen[name] = module

    def set_frozen_source(self, name: str, source: Optional[dict]) -> None:
        """Record where the weights of frozen network ``name`` came from
        (a :mod:`imdd_mm.utils.provenance` record; ``None`` forgets it)."""
        sources = self.__dict__.setdefault(_SOURCES_ATTR, {})
        if source is None:
            sources.pop(name, None)
        else:
            sources[name] = dict(source)

    def frozen_sources(self) -> Dict[str, dict]:
        """Source records of every frozen network held by this module or
        any module below it (children and frozen networks), by dotted name.

        A frozen network without its own record contributes the records of
        the frozen networks inside it (a text encoder's ``tower``).
        """
        return collect_frozen_sources(self)

    def frozen_modules(self) -> Iterator[nn.Module]:
        """Iterate over the hidden frozen networks."""
        return iter(list(self._frozen_dict().values()))

    def named_frozen_modules(self):
        return list(self._frozen_dict().items())

    def __getattr__(self, name: str):
        frozen = self.__dict__.get(_FROZEN_ATTR)
        if frozen is not None and name in frozen:
            return frozen[name]
        return super().__getattr__(name)

    # -- device / dtype tracking --------------------------------------------
    def _init_device_tracker(self):
        """A non-persistent empty buffer that tells the owner's device."""
        if '_device_tracker' not in self._buffers:
            self.register_buffer(
                '_device_tracker', torch.empty(0), persistent=False)

    def _tracker_device(self) -> Optional[torch.device]:
        buf = self._buffers.get('_device_tracker')
        return None if buf is None else buf.device

    @property
    def device(self) -> torch.device:
        """The device the owner (and its frozen networks) live on."""
        dev = self._tracker_device()
        if dev is not None:
            return dev
        for p in self.parameters():
            return p.device
        for m in self.frozen_modules():
            for p in m.parameters():
                return p.device
        return torch.device('cpu')

    # -- nn.Module overrides ----------------------------------------------
    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        for module in self.frozen_modules():
            module._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        """Keys of a frozen network found in a checkpoint (e.g. one saved
        with ``frozen=False``) are loaded into it instead of being reported
        as unexpected; checkpoints without them (the normal case) load
        strictly, as no frozen key is expected."""
        for name, module in self._frozen_dict().items():
            head = f'{prefix}{name}.'
            keys = [k for k in state_dict if k.startswith(head)]
            if not keys:
                continue
            sub = {k[len(head):]: state_dict.pop(k) for k in keys}
            result = module.load_state_dict(sub, strict=False)
            missing_keys.extend(head + k for k in result.missing_keys)
            unexpected_keys.extend(head + k for k in result.unexpected_keys)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        parts = []
        for name, module in self.named_frozen_modules():
            n = sum(p.numel() for p in module.parameters())
            parts.append(f'(frozen) {name}: {type(module).__name__} '
                         f'[{n / 1e6:.2f}M params, not in state_dict]')
        base = super().extra_repr()
        return '\n'.join(([base] if base else []) + parts)


def collect_frozen_sources(module: nn.Module,
                           prefix: str = '') -> Dict[str, dict]:
    """``{dotted name: source record}`` of the frozen networks held by
    :class:`FrozenModulesMixin` owners in ``module``'s tree (and inside
    those frozen networks).

    Raises:
        RuntimeError: a frozen network has no record (a bug: every builder
            of a frozen network must record its source).
    """
    out: Dict[str, dict] = {}
    for name, sub in module.named_modules(prefix=prefix):
        if not isinstance(sub, FrozenModulesMixin):
            continue
        records = sub.__dict__.get(_SOURCES_ATTR, {})
        for fname, frozen in sub.named_frozen_modules():
            key = f'{name}.{fname}' if name else fname
            if fname in records:
                out[key] = dict(records[fname])
                continue
            nested = collect_frozen_sources(frozen, key)
            if not nested:
                raise RuntimeError(
                    f'frozen network {key} ({type(frozen).__name__}) has no '
                    'recorded source; its builder must call '
                    'set_frozen_source()')
            out.update(nested)
    return out
