# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from .fpn_pixel_decoder import MultiScaleFPNPixelDecoder
from .ov_mask2former_head import OVMask2FormerHead
from .vocabulary import OpenVocabClassifierMixin, nouns_of

__all__ = [
    'MultiScaleFPNPixelDecoder', 'OVMask2FormerHead',
    'OpenVocabClassifierMixin', 'nouns_of'
]
