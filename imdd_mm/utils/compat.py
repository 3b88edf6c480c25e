# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Work-arounds for known incompatibilities in the pinned OpenMMLab stack.

They must run before ``mmdet.models`` (and with it ``mmpretrain.models``) is
imported, which is why ``import imdd_mm`` applies them first and why every
tool imports :mod:`imdd_mm` before anything from mmdet.
"""


def disable_mmpretrain_multimodal() -> None:
    """Stop mmpretrain 1.2.0 from importing its BLIP/Flamingo modules.

    With a current ``transformers`` installed (sentence-transformers needs
    it), ``mmpretrain.models.multimodal`` fails at import time, and
    ``import mmdet.models`` imports it through mmdet's mmpretrain backbones.
    Those multimodal models are not used by imdd-mm, so the switch mmpretrain
    itself provides (``WITH_MULTIMODAL``) is turned off.
    """
    try:
        import mmpretrain.utils.dependency as dependency
    except ImportError:  # mmpretrain is optional for imdd-mm
        return
    dependency.WITH_MULTIMODAL = False


def apply_compat_patches() -> None:
    """Apply every work-around; safe to call more than once."""
    disable_mmpretrain_multimodal()
