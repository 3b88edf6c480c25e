# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""IMDD vocabulary: unified taxonomy, controlled vocabulary (>= 500 terms),
root-cause knowledge, structured caption builder and the deterministic
noun/phrase extractor used by the converters and the grounding loss.

Pure Python + numpy/OpenCV; all content ships as data in ``data/``.
"""
from .captions import (GRID_NAMES, NORMAL_PHRASE, build_caption,
                       caption_for_image, describe_regions, morphology_phrase)
from .taxonomy import (data_path, load_taxonomy, map_category,
                       normalize_name, root_causes)
from .vocabulary import (NOUN_KINDS, extract_nouns, extract_terms,
                         load_vocabulary, tokenize)

__all__ = [
    'load_taxonomy', 'load_vocabulary', 'build_caption', 'caption_for_image',
    'describe_regions', 'morphology_phrase', 'extract_nouns',
    'extract_terms', 'map_category', 'root_causes', 'normalize_name',
    'tokenize', 'data_path', 'GRID_NAMES', 'NORMAL_PHRASE', 'NOUN_KINDS'
]
