# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Anomaly-detection baselines of Table 6 (issue 7), scored by the shared
metrics (P-AUROC, AUPRO, I-AUROC): PatchCore, SimpleNet, MuSc-style
:class:`MutualScoring`, WinCLIP/PromptAD-style :class:`CLIPPromptAD`,
DDAD-style :class:`DiffusionReconstructionAD`, DMAD-style
:class:`DiversityMeasurableAD`, DMAD-PPDM-style
:class:`ReverseDistillationPPDM` and FAIR-style
:class:`FrequencyRestorationAD`."""
from .base import BaseAnomalyDetector, gaussian_blur
from .clip_prompt_ad import CLIPPromptAD
from .dataset import AnomalyCocoDataset, object_prompt_name
from .diffusion_reconstruction import DiffusionReconstructionAD
from .diversity_measurable import DiversityMeasurableAD
from .feature_extractors import (ResNetPatchEmbedder, ViTPatchExtractor,
                                 build_open_clip)
from .frequency_restoration import FrequencyRestorationAD
from .memory_bank import (FitProgress, MemoryBankFitHook, greedy_coreset,
                          nearest_neighbors, random_projection,
                          subsample_patches)
from .mutual_scoring import MutualScoring, mutual_scores, rescore_images
from .patchcore import PatchCore
from .pre_deformation import PreDeformation
from .reverse_distillation import OneClassBottleneck, ReverseResNetDecoder
from .reverse_distillation_ppdm import ReverseDistillationPPDM
from .set_scoring_hook import SetScoringHook
from .simplenet import SimpleNet
from .vector_quantizer import VectorQuantizer, vector_quantize

__all__ = [
    'BaseAnomalyDetector', 'gaussian_blur', 'ResNetPatchEmbedder',
    'ViTPatchExtractor', 'build_open_clip', 'MemoryBankFitHook',
    'greedy_coreset', 'nearest_neighbors', 'random_projection', 'PatchCore',
    'SimpleNet', 'MutualScoring', 'mutual_scores', 'rescore_images',
    'SetScoringHook', 'FitProgress', 'subsample_patches', 'CLIPPromptAD',
    'DiffusionReconstructionAD', 'DiversityMeasurableAD',
    'FrequencyRestorationAD', 'AnomalyCocoDataset', 'object_prompt_name',
    'ReverseDistillationPPDM', 'PreDeformation', 'OneClassBottleneck',
    'ReverseResNetDecoder', 'VectorQuantizer', 'vector_quantize'
]
