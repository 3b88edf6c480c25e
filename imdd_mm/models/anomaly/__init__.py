# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Anomaly-detection baselines of Table 6 (issue 7), scored by the shared
metrics (P-AUROC, AUPRO, I-AUROC): PatchCore, SimpleNet, MuSc-style
:class:`MutualScoring`, WinCLIP/PromptAD-style :class:`CLIPPromptAD` and
DDAD-style :class:`DiffusionReconstructionAD`."""
from .base import BaseAnomalyDetector, gaussian_blur
from .clip_prompt_ad import CLIPPromptAD
from .dataset import AnomalyCocoDataset
from .diffusion_reconstruction import DiffusionReconstructionAD
from .feature_extractors import (ResNetPatchEmbedder, ViTPatchExtractor,
                                 build_open_clip)
from .memory_bank import (MemoryBankFitHook, greedy_coreset,
                          nearest_neighbors, random_projection)
from .mutual_scoring import MutualScoring, mutual_scores
from .patchcore import PatchCore
from .simplenet import SimpleNet

__all__ = [
    'BaseAnomalyDetector', 'gaussian_blur', 'ResNetPatchEmbedder',
    'ViTPatchExtractor', 'build_open_clip', 'MemoryBankFitHook',
    'greedy_coreset', 'nearest_neighbors', 'random_projection', 'PatchCore',
    'SimpleNet', 'MutualScoring', 'mutual_scores', 'CLIPPromptAD',
    'DiffusionReconstructionAD', 'AnomalyCocoDataset'
]
