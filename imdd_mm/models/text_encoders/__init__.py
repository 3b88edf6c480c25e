# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from .base_text_encoder import INDUSTRIAL_TEMPLATES, BaseTextEncoder
from .clip_text_encoder import CLIPTextEncoder
from .minilm_text_encoder import MiniLMTextEncoder, default_minilm_path
from .openclip_utils import (TINY_CLIP_CONFIG, OpenCLIPTextTower,
                             build_clip_text, build_clip_visual)

__all__ = [
    'BaseTextEncoder', 'CLIPTextEncoder', 'MiniLMTextEncoder',
    'INDUSTRIAL_TEMPLATES', 'TINY_CLIP_CONFIG', 'OpenCLIPTextTower',
    'build_clip_text', 'build_clip_visual', 'default_minilm_path'
]
