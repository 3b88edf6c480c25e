# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Export of the Stage-2 model to ONNX (see tools/deployment/)."""
from .head_export import (DiffusionBackboneForExport,
                          DiffusionFeaturesForExport, Stage2HeadForExport,
                          export_head, feature_shapes)

__all__ = [
    'DiffusionBackboneForExport', 'DiffusionFeaturesForExport',
    'Stage2HeadForExport', 'export_head',
    'feature_shapes'
]
