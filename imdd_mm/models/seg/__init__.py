# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""MMSegmentation path: ``import imdd_mm`` registers these into mmseg."""
from .imdd_encoder_decoder import IMDDEncoderDecoder
from .ov_mask2former_seg_head import OVMask2FormerSegHead
from .supervised_unet import SupervisedUNetSegmenter

__all__ = [
    'IMDDEncoderDecoder', 'OVMask2FormerSegHead', 'SupervisedUNetSegmenter'
]
