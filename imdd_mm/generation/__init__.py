# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Text-guided defect generation with the Stage-1 model and its metrics
(FID, IS), paper §5.2."""
from .metrics import (FIDISCalculator, InceptionExtractor, build_inception,
                      compute_fid, frechet_distance, inception_score,
                      load_image_folder, load_images)
from .pipeline import DefectGenerationPipeline, build_scheduler
from .writer import generate_to_dir, plan_generation, read_prompt_file

__all__ = [
    'DefectGenerationPipeline', 'build_scheduler', 'FIDISCalculator',
    'InceptionExtractor', 'build_inception', 'compute_fid',
    'frechet_distance', 'inception_score', 'load_image_folder',
    'load_images',
    'generate_to_dir', 'plan_generation', 'read_prompt_file'
]
