# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""High-level Python APIs (as ``mmdet.apis``)."""
from .defect_inferencer import DefectInferencer
from .image_io import (IMAGE_EXTS, list_images, output_stems, read_image,
                       tile_windows, to_bgr_uint8)
from .model_zoo import find_model, load_metafiles

__all__ = [
    'DefectInferencer', 'IMAGE_EXTS', 'find_model', 'list_images',
    'load_metafiles', 'output_stems', 'read_image', 'tile_windows',
    'to_bgr_uint8'
]
