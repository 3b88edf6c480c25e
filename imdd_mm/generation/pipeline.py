# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Text-guided defect image generation with a Stage-1 model (paper §5.2).

:class:`DefectGenerationPipeline` runs the reverse diffusion of the
Stage-1 U-Net in the frozen VAE's latent space with diffusers' DDIM or DDPM
scheduler (configured with the training schedule: linear beta 1e-4 ... 0.02,
T = 1000) and classifier-free guidance (eq. 26)::

    eps = eps(z_t, t, null) + w * (eps(z_t, t, c) - eps(z_t, t, null))

where ``null`` is the null condition the pretrainer used for its
condition dropout (the empty-prompt embedding or zeros).

Determinism: image ``k`` of a call uses its own ``torch.Generator`` seeded
with ``seeds[k]`` (on CPU) for its initial latent and for every stochastic
scheduler step, so an image depends only on its prompt, seed and settings,
not on the batch size or on the other images of the batch.

From Python (e.g. as an augmentation source)::

    pipe = DefectGenerationPipeline.from_config(cfg_path, ckpt_path)
    images = pipe(['steel strip with scratches'] * 4, seeds=[0, 1, 2, 3],
                  height=512, width=512, guidance_scale=7.5)
    # -> list of (512, 512, 3) uint8 RGB arrays
"""
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

SCHEDULERS = ('ddim', 'ddpm')


def build_scheduler(name: str = 'ddim',
                    num_train_timesteps: int = 1000,
                    beta_start: float = 1e-4,
                    beta_end: float = 0.02,
                    beta_schedule: str = 'linear'):
    """A diffusers DDIM/DDPM scheduler with the Stage-1 training schedule.

    ``clip_sample`` is off (latents are not bounded to [-1, 1]); DDIM uses
    ``set_alpha_to_one=False, steps_offset=1`` as in Stable Diffusion.
    """
    from diffusers import DDIMScheduler, DDPMScheduler
    common = dict(
        num_train_timesteps=num_train_timesteps,
        beta_start=beta_start,
        beta_end=beta_end,
        beta_schedule=beta_schedule,
        clip_sample=False,
        prediction_type='epsilon')
    if name == 'ddim':
        return DDIMScheduler(
            set_alpha_to_one=False, steps_offset=1, **common)
    if name == 'ddpm':
        return DDPMScheduler(variance_type='fixed_small', **common)
    raise ValueError(f'scheduler must be one of {SCHEDULERS}, got {name!r}')


class DefectGenerationPipeline:
    """Sample images from a Stage-1 U-Net conditioned on prompts.

    Args:
        unet (nn.Module): diffusers ``UNet2DConditionModel`` (eps-prediction).
        vae (nn.Module): diffusers ``AutoencoderKL``.
        text_encoder: An imdd-mm text encoder (``encode(list[str]) ->
            (N, D)``).
        scaling_factor (float): Latent scaling used in training.
        null_condition (str): 'empty' (embedding of the empty prompt) or
            'zero' (zeros); must match the pretrainer. Defaults to 'empty'.
        scheduler_cfg (dict, optional): Keyword arguments of
            :func:`build_scheduler` (except ``name``).
        device (str | torch.device, optional): Defaults to the U-Net's.
    """

    def __init__(self,
                 unet: nn.Module,
                 vae: nn.Module,
                 text_encoder,
                 scaling_factor: float = 0.18215,
                 null_condition: str = 'empty',
                 scheduler_cfg: Optional[dict] = None,
                 device: Optional[Union[str, torch.device]] = None) -> None:
        if null_condition not in ('empty', 'zero'):
            raise ValueError("null_condition must be 'empty' or 'zero', got "
                             f'{null_condition!r}')
        self.unet = unet.eval()
        self.vae = vae.eval()
        self.text_encoder = text_encoder
        self.scaling_factor = float(scaling_factor)
        self.null_condition = null_condition
        self.scheduler_cfg = dict(scheduler_cfg or {})
        self.device = torch.device(device) if device is not None else \
            next(unet.parameters()).device

    # ------------------------------------------------------------------
    @classmethod
    def from_pretrainer(cls, model: nn.Module, **kwargs):
        """Build from an :class:`IMDDDiffusionPretrainer` (uses its
        ``unet``, ``vae``, ``text_encoder``, scaling factor, null condition
        and noise schedule)."""
        sched = dict(
            num_train_timesteps=model.num_train_timesteps,
            beta_start=model.beta_start,
            beta_end=model.beta_end,
            beta_schedule=model.beta_schedule)
        sched.update(kwargs.pop('scheduler_cfg', None) or {})
        return cls(
            unet=model.unet,
            vae=model.vae,
            text_encoder=model.text_encoder,
            scaling_factor=model.scaling_factor,
            null_condition=model.null_condition,
            scheduler_cfg=sched,
            **kwargs)

    @classmethod
    def from_config(cls,
                    config,
                    checkpoint: str,
                    use_ema: bool = True,
                    device: Union[str, torch.device] = 'cpu',
                    **kwargs):
        """Build the pretrainer of ``config`` (path or Config), load the
        Stage-1 ``checkpoint`` (EMA weights by default) and wrap it."""
        from mmengine.config import Config

        from imdd_mm.models.pretrainers import load_pretrainer_checkpoint
        from imdd_mm.utils import register_all_modules
        from mmdet.registry import MODELS
        register_all_modules()
        cfg = Config.fromfile(config) if isinstance(config, str) else config
        model = MODELS.build(cfg.model)
        load_pretrainer_checkpoint(model, checkpoint, use_ema=use_ema)
        model.to(device).eval()
        return cls.from_pretrainer(model, device=device, **kwargs)

    # ------------------------------------------------------------------
    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompt embeddings (N, 1, D) on the pipeline's device."""
        emb = self.text_encoder.encode(list(prompts))
        return emb.to(self.device, torch.float32).unsqueeze(1)

    @torch.no_grad()
    def null_embedding(self, n: int) -> torch.Tensor:
        """Null-condition embeddings (n, 1, D)."""
        emb = self.text_encoder.encode([''])
        if self.null_condition == 'zero':
            emb = torch.zeros_like(emb)
        return emb.to(self.device, torch.float32).unsqueeze(1).expand(
            n, -1, -1)

    def _latent_shape(self, height: int, width: int) -> tuple:
        factor = 2**(len(self.vae.config.block_out_channels) - 1)
        if height % factor or width % factor:
            raise ValueError(f'height and width must be multiples of '
                             f'{factor} (the VAE downsampling), got '
                             f'{height}x{width}')
        return (self.unet.config.in_channels, height // factor,
                width // factor)

    @torch.no_grad()
    def __call__(self,
                 prompts: Sequence[str],
                 seeds: Sequence[int],
                 height: int = 512,
                 width: int = 512,
                 num_inference_steps: int = 50,
                 guidance_scale: float = 7.5,
                 scheduler: str = 'ddim',
                 eta: float = 0.0,
                 batch_size: int = 8) -> List[np.ndarray]:
        """Generate one image per (prompt, seed) pair.

        Args:
            prompts (Sequence[str]): N prompts.
            seeds (Sequence[int]): N seeds (image k uses ``seeds[k]``).
            height, width (int): Output size (multiples of the VAE factor).
            num_inference_steps (int): Denoising steps. Defaults to 50.
            guidance_scale (float): CFG weight w; <= 1 disables guidance
                (no unconditional pass). Defaults to 7.5.
            scheduler (str): 'ddim' or 'ddpm'. Defaults to 'ddim'.
            eta (float): DDIM eta (0 = deterministic DDIM). Defaults to 0.
            batch_size (int): Images per U-Net forward. Defaults to 8.

        Returns:
            list[np.ndarray]: N RGB uint8 images (height, width, 3).
        """
        prompts = list(prompts)
        seeds = [int(s) for s in seeds]
        if len(prompts) != len(seeds):
            raise ValueError(f'got {len(prompts)} prompts but {len(seeds)} '
                             'seeds')
        if batch_size < 1 or num_inference_steps < 1:
            raise ValueError('batch_size and num_inference_steps must be '
                             '>= 1')
        shape = self._latent_shape(height, width)
        images: List[np.ndarray] = []
        for start in range(0, len(prompts), batch_size):
            images += self._generate_batch(
                prompts[start:start + batch_size],
                seeds[start:start + batch_size], shape, num_inference_steps,
                guidance_scale, scheduler, eta)
        return images

    def _generate_batch(self, prompts, seeds, shape, steps, guidance,
                        scheduler_name, eta) -> List[np.ndarray]:
        n = len(prompts)
        sched = build_scheduler(scheduler_name, **self.scheduler_cfg)
        sched.set_timesteps(steps, device=self.device)
        gens = [torch.Generator('cpu').manual_seed(s) for s in seeds]
        latents = torch.cat([
            torch.randn((1, ) + shape, generator=g, dtype=torch.float32)
            for g in gens
        ]).to(self.device)
        latents = latents * sched.init_noise_sigma
        cond = self.encode_prompts(prompts)
        use_cfg = guidance > 1.0
        if use_cfg:
            cond = torch.cat([self.null_embedding(n), cond])
        unet_dtype = next(self.unet.parameters()).dtype
        step_kwargs = dict(generator=gens)
        if scheduler_name == 'ddim':
            step_kwargs['eta'] = eta
        for t in sched.timesteps:
            model_in = torch.cat([latents] * 2) if use_cfg else latents
            model_in = sched.scale_model_input(model_in, t)
            eps = self.unet(
                model_in.to(unet_dtype), t,
                encoder_hidden_states=cond.to(unet_dtype)).sample.float()
            if use_cfg:
                eps_uncond, eps_cond = eps.chunk(2)
                eps = eps_uncond + guidance * (eps_cond - eps_uncond)
            latents = sched.step(eps, t, latents, **step_kwargs).prev_sample
        vae_dtype = next(self.vae.parameters()).dtype
        decoded = self.vae.decode(
            (latents / self.scaling_factor).to(vae_dtype)).sample.float()
        decoded = ((decoded.clamp(-1, 1) + 1) * 127.5).round().to(
            torch.uint8)
        return list(decoded.permute(0, 2, 3, 1).cpu().numpy())
