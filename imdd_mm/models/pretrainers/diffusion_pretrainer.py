# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Stage-1 pretraining of the text-conditioned diffusion U-Net (paper §4.3,
§4.4, §4.7, eq. 1-8 and 15).

Per batch of images ``I`` (B, 3, H, W) in [-1, 1] with captions ``t``:

1. ``z0 = VAE.encode(I)`` (frozen; posterior sample, or mean, times the
   scaling factor) -> (B, 4, H/8, W/8); eq. 1.
2. ``e_T = text_encoder(t)`` (frozen; CLIP ViT-L/14 768-d in the paper,
   MiniLM 384-d in the tiny configs) -> (B, 1, D); eq. 3.
3. ``t_imp = captioner(I)`` = MLP(frozen CLIP image tower) -> (B, 1, D);
   eq. 6.
4. Stochastic conditioning, eq. 7: per sample ``m ~ Bernoulli(0.5)`` and
   ``c = m * e_T + (1 - m) * t_imp``. Computing the mix arithmetically keeps
   both branches in the autograd graph, so every trainable parameter takes
   part in every step and DDP needs no ``find_unused_parameters``.
5. Optional null-condition dropout (``uncond_prob``, our addition so that
   classifier-free guidance, eq. 26, works at sampling time): ``c`` of a
   dropped sample is replaced by the null condition (embedding of the empty
   prompt, or zeros).
6. ``t ~ U{1..T}`` (diffusers index ``0..T-1``), ``eps ~ N(0, I)``,
   ``z_t = sqrt(a_t) z0 + sqrt(1 - a_t) eps`` with the DDPM linear schedule
   beta 1e-4 ... 0.02, T = 1000 (eq. 2; ``DDPMScheduler.add_noise``).
7. ``L = MSE(eps, U-Net(z_t, t, c)) + 0.3 * (1 - cos(t_imp, e_T))``
   (eq. 5, 8, 15).

The U-Net is built by :func:`imdd_mm.models.backbones.build_unet`
(``init='he_xavier'``: He for convs, Xavier for linears, from random init);
the VAE and text encoder are frozen and held outside the module tree, so
they are never in ``state_dict()``, the optimizer, DDP or the EMA copy. The
trainable parameters are ``unet.*`` and ``captioner.mlp.*``.

Precomputed inputs (``input_type='latent'``): the batch then carries, per
sample, VAE posterior moments (8, h, w) in ``inputs`` and the caption
embedding and CLIP image embedding in the data samples (see
``imdd_mm/datasets/latent_caption.py``); the frozen encoders do not run.
"""
import copy
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig

from imdd_mm.utils.provenance import enforces_frozen_policy
from ..backbones.diffusion_builders import (build_unet, build_vae,
                                            he_xavier_init_)
from ..backbones.frozen import FrozenModulesMixin

_DEFAULT_PREPROCESSOR = dict(
    type='ImgDataPreprocessor',
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True)


@MODELS.register_module()
class IMDDDiffusionPretrainer(FrozenModulesMixin, BaseModel):
    """Stage-1 model: text-conditioned latent diffusion + implicit captioner.

    Args:
        unet (dict): :func:`build_unet` cfg, e.g.
            ``dict(config=SD15_UNET_CONFIG, init='he_xavier')``.
        vae (dict): :func:`build_vae` cfg (frozen), e.g.
            ``dict(pretrained='stable-diffusion-v1-5/stable-diffusion-v1-5')``.
        text_encoder (dict): MODELS cfg of a frozen imdd-mm text encoder
            (``encode(list[str]) -> (N, D)``).
        captioner (dict): MODELS cfg of ``ImplicitCaptioner`` whose output
            dim equals the text dim and the U-Net's ``cross_attention_dim``.
        num_train_timesteps (int): T. Defaults to 1000.
        beta_start, beta_end (float): Linear schedule. Defaults to 1e-4,
            0.02 (§4.3).
        beta_schedule (str): diffusers name. Defaults to 'linear'.
        caption_prob (float): Probability of conditioning a sample on its
            caption embedding instead of the implicit one (eq. 7).
            Defaults to 0.5.
        diff_loss_weight (float): Defaults to 1.0.
        imp_loss_weight (float): Weight of L_imp (eq. 15). Defaults to 0.3.
        uncond_prob (float): Null-condition dropout. Defaults to 0.0.
        null_condition (str): 'empty' (empty-prompt embedding) or 'zero'.
            Defaults to 'empty'.
        latent_sampling (str): 'sample' (posterior sample, LDM training) or
            'mean'. Defaults to 'sample'.
        scaling_factor (float, optional): Latent scale; None takes the VAE
            config's (0.18215 for SD's VAE).
        vae_fp32 (bool): Run the frozen VAE encoder in fp32 even under AMP
            (SD's VAE is unstable in fp16). Defaults to True.
        gradient_checkpointing (bool): U-Net activation checkpointing.
            Defaults to False.
        captioner_init (str, optional): 'xavier' re-initialises the
            captioner MLP's linears with Xavier-uniform and zero biases
            (§11.3); None keeps the captioner's own init. Defaults to
            'xavier'.
        input_type (str): 'image' or 'latent' (precomputed inputs).
            Defaults to 'image'.
        allow_random_frozen (bool): Accept a random VAE / text encoder /
            CLIP image tower (tests, tiny models). Defaults to False: the
            build fails with one message naming the missing weights. The
            sources are logged and saved in every checkpoint's meta
            (``FrozenSourcesHook``), where Stage 2 checks them.
        override_frozen_sources (bool): Resume / load a checkpoint that
            recorded other frozen networks. Defaults to False.
        data_preprocessor (dict, optional): Defaults to an
            ``ImgDataPreprocessor`` mapping BGR uint8 to RGB in [-1, 1].
        init_cfg (dict, optional): mmengine init cfg.
    """

    @enforces_frozen_policy
    def __init__(self,
                 unet: ConfigType,
                 vae: ConfigType,
                 text_encoder: ConfigType,
                 captioner: ConfigType,
                 num_train_timesteps: int = 1000,
                 beta_start: float = 1e-4,
                 beta_end: float = 0.02,
                 beta_schedule: str = 'linear',
                 caption_prob: float = 0.5,
                 diff_loss_weight: float = 1.0,
                 imp_loss_weight: float = 0.3,
                 uncond_prob: float = 0.0,
                 null_condition: str = 'empty',
                 latent_sampling: str = 'sample',
                 scaling_factor: Optional[float] = None,
                 vae_fp32: bool = True,
                 gradient_checkpointing: bool = False,
                 captioner_init: Optional[str] = 'xavier',
                 input_type: str = 'image',
                 allow_random_frozen: bool = False,
                 override_frozen_sources: bool = False,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = copy.deepcopy(_DEFAULT_PREPROCESSOR)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self._init_device_tracker()
        if not 0 <= caption_prob <= 1 or not 0 <= uncond_prob < 1:
            raise ValueError('caption_prob must be in [0, 1] and uncond_prob '
                             f'in [0, 1), got {caption_prob}, {uncond_prob}')
        if null_condition not in ('empty', 'zero'):
            raise ValueError("null_condition must be 'empty' or 'zero', got "
                             f'{null_condition!r}')
        if latent_sampling not in ('sample', 'mean'):
            raise ValueError("latent_sampling must be 'sample' or 'mean', "
                             f'got {latent_sampling!r}')
        if input_type not in ('image', 'latent'):
            raise ValueError("input_type must be 'image' or 'latent', got "
                             f'{input_type!r}')

        self.unet = build_unet(dict(unet))
        self.captioner = MODELS.build(captioner)
        if not hasattr(self.captioner, 'mlp'):
            raise TypeError(f'captioner {type(self.captioner).__name__} has '
                            'no `mlp` attribute')
        if captioner_init == 'xavier':
            he_xavier_init_(self.captioner.mlp)
        elif captioner_init is not None:
            raise ValueError("captioner_init must be 'xavier' or None, got "
                             f'{captioner_init!r}')
        vae_net, vae_source = build_vae(dict(vae), with_source=True)
        self.add_frozen_module('vae', vae_net)
        self.set_frozen_source('vae', vae_source)
        self.add_frozen_module('text_encoder', MODELS.build(text_encoder))
        self.override_frozen_sources = bool(override_frozen_sources)

        cross_dim = self.unet.config.cross_attention_dim
        text_dim = getattr(self.text_encoder, 'embed_dim', cross_dim)
        if text_dim != cross_dim:
            raise ValueError(
                f'text encoder dim {text_dim} != U-Net cross_attention_dim '
                f'{cross_dim}; set unet.config.cross_attention_dim to the '
                'text dim (CLIP ViT-L/14: 768, MiniLM: 384)')
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self.gradient_checkpointing = gradient_checkpointing

        from diffusers import DDPMScheduler
        self.num_train_timesteps = num_train_timesteps
        self.beta_start = beta_start
        self.beta_end = beta_end
        self.beta_schedule = beta_schedule
        self.noise_scheduler = DDPMScheduler(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            clip_sample=False,
            prediction_type='epsilon')
        self.caption_prob = caption_prob
        self.diff_loss_weight = diff_loss_weight
        self.imp_loss_weight = imp_loss_weight
        self.uncond_prob = uncond_prob
        self.null_condition = null_condition
        self.latent_sampling = latent_sampling
        if scaling_factor is None:
            scaling_factor = getattr(self.vae.config, 'scaling_factor',
                                     0.18215)
        self.scaling_factor = float(scaling_factor)
        self.vae_fp32 = vae_fp32
        self.input_type = input_type
        self._null_cache: Optional[Tensor] = None

    # ------------------------------------------------------------------
    # EMA / deepcopy: share the frozen networks instead of copying them
    def __deepcopy__(self, memo: dict) -> 'IMDDDiffusionPretrainer':
        """Deep copy that shares (does not copy) every hidden frozen
        network, here and in children (text towers, CLIP tower): mmengine's
        EMA model is a deep copy, and duplicating ~0.3B frozen parameters
        there would only waste memory."""
        for module in self.modules():
            if isinstance(module, FrozenModulesMixin):
                for frozen in module.frozen_modules():
                    memo[id(frozen)] = frozen
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = copy.deepcopy(value, memo)
        return new

    # ------------------------------------------------------------------
    @torch.no_grad()
    def encode_images(self, img: Tensor,
                      sample: Optional[bool] = None) -> Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> scaled latents (B, 4, h, w).

        ``sample`` (default: ``latent_sampling == 'sample'``) draws from the
        posterior; False takes its mean.
        """
        if sample is None:
            sample = self.latent_sampling == 'sample'
        vae_dtype = next(self.vae.parameters()).dtype
        if self.vae_fp32:
            with torch.autocast(device_type=img.device.type, enabled=False):
                dist = self.vae.encode(img.to(vae_dtype)).latent_dist
        else:
            dist = self.vae.encode(img.to(vae_dtype)).latent_dist
        z = dist.sample() if sample else dist.mean
        return z.float() * self.scaling_factor

    def latents_from_moments(self, moments: Tensor,
                             sample: Optional[bool] = None) -> Tensor:
        """Precomputed VAE posterior moments (B, 2C, h, w) (mean, logvar)
        -> scaled latents (B, C, h, w)."""
        if sample is None:
            sample = self.latent_sampling == 'sample'
        mean, logvar = moments.float().chunk(2, dim=1)
        if sample:
            std = torch.exp(0.5 * logvar.clamp(-30., 20.))
            mean = mean + std * torch.randn_like(mean)
        return mean * self.scaling_factor

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> Tensor:
        """Captions -> frozen text embeddings (N, D) float32."""
        emb = self.text_encoder.encode(list(texts))
        return emb.to(self.device, torch.float32)

    def null_embedding(self) -> Tensor:
        """The null condition (1, 1, D)."""
        if self._null_cache is None or \
                self._null_cache.device != self.device:
            emb = self.encode_text([''])
            if self.null_condition == 'zero':
                emb = torch.zeros_like(emb)
            self._null_cache = emb[:, None]
        return self._null_cache

    @staticmethod
    def _captions(data_samples: Optional[List[BaseDataElement]],
                  n: int) -> List[str]:
        if data_samples is None:
            raise ValueError('IMDDDiffusionPretrainer needs data_samples '
                             'with a `caption` metainfo entry')
        caps = [ds.metainfo.get('caption', None) for ds in data_samples]
        if len(caps) != n or any(c is None for c in caps):
            raise ValueError('every data sample needs a `caption` metainfo '
                             'entry (pack it with PackDetInputs(meta_keys=('
                             "..., 'caption')))")
        return [str(c) for c in caps]

    def _prepare(self, inputs: Tensor,
                 data_samples: Optional[List[BaseDataElement]],
                 sample: Optional[bool] = None):
        """Return (z0 (B,C,h,w), e_T (B,1,D), t_imp (B,1,D))."""
        if self.input_type == 'image':
            if isinstance(inputs, (list, tuple)):
                inputs = torch.stack(list(inputs))
            z0 = self.encode_images(inputs, sample)
            caps = self._captions(data_samples, z0.shape[0])
            e_t = self.encode_text(caps)[:, None]
            t_imp = self.captioner(inputs)
        else:
            if isinstance(inputs, (list, tuple)):
                inputs = torch.stack(list(inputs))
            z0 = self.latents_from_moments(inputs.to(self.device), sample)
            if data_samples is None:
                raise ValueError('latent inputs need data_samples carrying '
                                 '`text_embed` and `image_embed`')
            e_t = torch.stack([ds.text_embed for ds in data_samples]).to(
                self.device, torch.float32)[:, None]
            clip = torch.stack([ds.image_embed for ds in data_samples]).to(
                self.device, torch.float32)
            t_imp = self.captioner.mlp(clip)
            if t_imp.dim() == 2:
                t_imp = t_imp[:, None]
        if t_imp.dim() != 3 or t_imp.shape[1] != 1:
            raise ValueError('captioner must return (B, 1, D), got '
                             f'{tuple(t_imp.shape)}')
        return z0, e_t, t_imp

    def condition(self, e_t: Tensor, t_imp: Tensor,
                  use_caption: Optional[Tensor] = None,
                  drop: Optional[Tensor] = None) -> Tensor:
        """Eq. 7 mix plus null dropout.

        Args:
            e_t, t_imp (Tensor): (B, 1, D).
            use_caption (Tensor, optional): (B,) bool; drawn with
                ``caption_prob`` when None.
            drop (Tensor, optional): (B,) bool null-dropout mask; drawn
                with ``uncond_prob`` when None.

        Returns:
            Tensor: (B, 1, D) conditioning.
        """
        b = e_t.shape[0]
        if use_caption is None:
            use_caption = torch.rand(b, device=e_t.device) < \
                self.caption_prob
        m = use_caption.to(t_imp.dtype).view(b, 1, 1)
        cond = m * e_t.to(t_imp.dtype) + (1 - m) * t_imp
        if drop is None and self.uncond_prob > 0:
            drop = torch.rand(b, device=e_t.device) < self.uncond_prob
        if drop is not None:
            null = self.null_embedding().to(cond.dtype).expand_as(cond)
            cond = torch.where(drop.view(b, 1, 1), null, cond)
        return cond

    def predict_noise(self, z_t: Tensor, timesteps: Tensor,
                      cond: Tensor) -> Tensor:
        """eps_theta(z_t, t, c): (B, C, h, w)."""
        return self.unet(z_t, timesteps, encoder_hidden_states=cond).sample

    # ------------------------------------------------------------------
    def forward(self,
                inputs: Tensor,
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}". Only supports loss, '
                           'predict and tensor mode')

    def loss(self, inputs: Tensor,
             data_samples: Optional[List[BaseDataElement]] = None
             ) -> Dict[str, Tensor]:
        """L_diff + 0.3 L_imp (eq. 15).

        Returns:
            dict: ``loss_diff``, ``loss_imp`` and the monitoring values
            ``imp_cos`` (mean cosine) and ``caption_frac``.
        """
        z0, e_t, t_imp = self._prepare(inputs, data_samples)
        b = z0.shape[0]
        use_caption = torch.rand(b, device=z0.device) < self.caption_prob
        cond = self.condition(e_t, t_imp, use_caption=use_caption)
        noise = torch.randn_like(z0)
        timesteps = torch.randint(
            0, self.num_train_timesteps, (b, ), device=z0.device).long()
        z_t = self.noise_scheduler.add_noise(z0, noise, timesteps)
        eps = self.predict_noise(z_t, timesteps, cond)
        loss_diff = F.mse_loss(eps.float(), noise.float())
        cos = F.cosine_similarity(
            t_imp.squeeze(1).float(), e_t.squeeze(1).float(), dim=-1)
        loss_imp = (1 - cos).mean()
        return dict(
            loss_diff=self.diff_loss_weight * loss_diff,
            loss_imp=self.imp_loss_weight * loss_imp,
            imp_cos=cos.detach().mean(),
            caption_frac=use_caption.float().mean())

    @torch.no_grad()
    def predict(self,
                inputs: Tensor,
                data_samples: Optional[List[BaseDataElement]] = None,
                num_timesteps: int = 10,
                seed: int = 0) -> List[BaseDataElement]:
        """Deterministic per-sample denoising error (a validation signal).

        Each sample is noised at ``num_timesteps`` evenly spaced timesteps
        with noise from a generator seeded with ``seed`` and conditioned on
        its caption (latents: the VAE posterior mean); the mean squared
        error is stored as
        ``pred_denoise_loss`` (float) on the sample, together with the
        implicit/caption cosine ``pred_imp_cos``.
        """
        z0, e_t, t_imp = self._prepare(inputs, data_samples, sample=False)
        b = z0.shape[0]
        gen = torch.Generator('cpu').manual_seed(seed)
        ts = torch.linspace(0, self.num_train_timesteps - 1,
                            num_timesteps).round().long()
        err = torch.zeros(b, device=z0.device)
        for t in ts:
            noise = torch.randn(z0.shape, generator=gen).to(z0)
            tt = t.repeat(b).to(z0.device)
            z_t = self.noise_scheduler.add_noise(z0, noise, tt)
            eps = self.predict_noise(z_t, tt, e_t.to(z_t.dtype))
            err += ((eps.float() - noise) ** 2).flatten(1).mean(1)
        err /= len(ts)
        cos = F.cosine_similarity(t_imp.squeeze(1), e_t.squeeze(1), dim=-1)
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(b)]
        for i, ds in enumerate(data_samples):
            ds.set_field(float(err[i]), 'pred_denoise_loss', field_type='data')
            ds.set_field(float(cos[i]), 'pred_imp_cos', field_type='data')
        return data_samples

    def _forward(self, inputs: Tensor,
                 data_samples: Optional[List[BaseDataElement]] = None
                 ) -> Tensor:
        """Noise prediction at random t for caption conditioning."""
        z0, e_t, _ = self._prepare(inputs, data_samples)
        noise = torch.randn_like(z0)
        t = torch.randint(0, self.num_train_timesteps, (z0.shape[0], ),
                          device=z0.device)
        return self.predict_noise(
            self.noise_scheduler.add_noise(z0, noise, t), t, e_t)
