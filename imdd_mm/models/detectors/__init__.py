# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from .imdd_mask2former import IMDDMask2Former
from .imdd_tta import IMDDFlipTTAModel, flip_tta_pipeline
from .postprocess import defect_score_map, masks_to_boxes, split_components
from .vocabulary_hook import VocabularyHook

__all__ = [
    'IMDDMask2Former', 'IMDDFlipTTAModel', 'VocabularyHook',
    'flip_tta_pipeline', 'defect_score_map', 'masks_to_boxes',
    'split_components'
]
