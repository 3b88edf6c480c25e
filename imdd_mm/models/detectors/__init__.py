# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from .imdd_mask2former import IMDDMask2Former
from .postprocess import masks_to_boxes, split_components
from .vocabulary_hook import VocabularyHook

__all__ = [
    'IMDDMask2Former', 'VocabularyHook', 'masks_to_boxes', 'split_components'
]
