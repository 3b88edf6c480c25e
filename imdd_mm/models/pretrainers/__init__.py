# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from .diffusion_pretrainer import IMDDDiffusionPretrainer
from .export import export_stage1_to_diffusers, stage1_config_from_checkpoint
from .precompute import precompute_stage1_latents
from .stage1_checkpoint import (check_stage2_against_stage1,
                                load_pretrainer_checkpoint,
                                load_stage1_into_stage2, load_stage1_weights,
                                stage1_state_dict)

__all__ = [
    'IMDDDiffusionPretrainer', 'load_stage1_weights',
    'load_pretrainer_checkpoint', 'stage1_state_dict',
    'export_stage1_to_diffusers', 'stage1_config_from_checkpoint',
    'precompute_stage1_latents', 'load_stage1_into_stage2',
    'check_stage2_against_stage1'
]
