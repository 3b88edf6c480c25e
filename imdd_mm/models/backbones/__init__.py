# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from ._registry import register_model
from .diffusion_backbone import IMDDDiffusionBackbone, ddpm_alphas_cumprod
from .diffusion_builders import (SD15_UNET_CONFIG, SD15_VAE_CONFIG,
                                 TINY_UNET_CONFIG, TINY_VAE_CONFIG,
                                 build_unet, build_vae, count_params,
                                 tiny_unet_config, tiny_vae_config)
from .frozen import FrozenModulesMixin, freeze_module, seeded_init

__all__ = [
    'IMDDDiffusionBackbone', 'build_unet', 'build_vae', 'count_params',
    'SD15_UNET_CONFIG', 'SD15_VAE_CONFIG', 'TINY_UNET_CONFIG',
    'TINY_VAE_CONFIG', 'tiny_unet_config', 'tiny_vae_config',
    'ddpm_alphas_cumprod', 'FrozenModulesMixin', 'freeze_module',
    'seeded_init', 'register_model'
]
