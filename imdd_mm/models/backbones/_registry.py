# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Register a model component into mmdet's and mmseg's MODELS registries."""
from typing import Sequence

from mmdet.registry import MODELS as MMDET_MODELS


def register_model(cls=None, *, aliases: Sequence[str] = (),
                   mmseg_class_name: bool = True):
    """Class decorator: register ``cls`` in mmdet's and mmseg's MODELS.

    Args:
        aliases (Sequence[str]): extra names, registered in both registries.
        mmseg_class_name (bool): also register the class name in mmseg's
            registry. False where mmseg already uses the name (mmseg has its
            own ``CLIPTextEncoder``; ours is ``IMDDCLIPTextEncoder`` there).
    """

    def _register(klass):
        MMDET_MODELS.register_module(module=klass)
        for alias in aliases:
            MMDET_MODELS.register_module(name=alias, module=klass)
        try:
            from mmseg.registry import MODELS as MMSEG_MODELS
        except ImportError:  # mmseg is optional for the detection path
            return klass
        names = ([klass.__name__] if mmseg_class_name else []) + list(aliases)
        for name in names:
            MMSEG_MODELS.register_module(name=name, module=klass)
        return klass

    return _register if cls is None else _register(cls)
