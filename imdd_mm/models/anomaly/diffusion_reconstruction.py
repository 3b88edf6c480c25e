# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Diffusion-reconstruction anomaly detection in the spirit of DDAD
(Mousakhan et al., "Anomaly Detection with Conditioned Denoising Diffusion
Models", 2023), written for imdd-mm. (DMAD, a different method, is
:class:`DiversityMeasurableAD`.)

Training: a diffusers ``UNet2DModel`` learns DDPM epsilon-prediction on
normal images (pixels in [-1, 1]).

Test: the input ``y`` is noised to ``test_timestep`` with a fixed seeded
noise and denoised back with ``num_inference_steps`` deterministic DDIM
steps, each *conditioned on the input* (DDAD):
``eps~ = eps_theta(x_t, t) - w * sqrt(1 - a_t) * (y_t - x_t)`` with
``y_t = sqrt(a_t) * y + sqrt(1 - a_t) * eps_theta(x_t, t)``.
The anomaly map combines a feature distance (``1 - cos`` of frozen
(Wide-)ResNet stage features of ``y`` and its reconstruction, mean over
stages) and the pixel distance (mean absolute difference over channels).
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import OptConfigType, OptMultiConfig
from .base import BaseAnomalyDetector, smoothed_topk_mean
from .feature_extractors import ResNetPatchEmbedder

#: UNet2DModel used when no ``unet`` is given (a small DDPM U-Net).
DEFAULT_UNET = dict(
    sample_size=256,
    in_channels=3,
    out_channels=3,
    layers_per_block=2,
    block_out_channels=(64, 128, 256, 256),
    down_block_types=('DownBlock2D', 'DownBlock2D', 'AttnDownBlock2D',
                      'DownBlock2D'),
    up_block_types=('UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D', 'UpBlock2D'))


@MODELS.register_module()
class DiffusionReconstructionAD(BaseAnomalyDetector):
    """DDAD-style conditioned diffusion reconstruction.

    Normalisation: ``feature_weight * (1 - cos) / 2 + (1 - feature_weight)
    * |y - x_hat| / 2`` lies in [0, 1] by construction (cosine in [-1, 1],
    pixels in [-1, 1]). The image score is the mean of the top
    ``image_topk`` fraction of the Gaussian-smoothed map.

    Args:
        unet (dict, optional): ``UNet2DModel`` config (random init).
        unet_pretrained (str, optional): Local diffusers UNet folder.
        num_train_timesteps (int): DDPM steps. Defaults to 1000.
        beta_schedule (str): diffusers schedule ('linear',
            'squaredcos_cap_v2' = cosine). Defaults to 'linear'.
        test_timestep (int): Noise level the input is taken to.
            Defaults to 250.
        num_inference_steps (int): DDIM steps back to 0. Defaults to 5.
        condition_weight (float): ``w`` of the conditioning. Defaults to 3.
        feature_extractor (dict): :class:`ResNetPatchEmbedder` kwargs for
            the feature distance (stage features, no aggregation).
        backbone_checkpoint (str, optional): Local weights for it.
        feature_weight (float): Weight of the feature distance in [0, 1].
            Defaults to 0.5.
        image_topk (float): Fraction of pixels averaged for the image
            score. Defaults to 0.01.
        seed (int): Seed of the test-time noise. Defaults to 0.
    """

    frozen_modules = ('feature_extractor', )

    def __init__(self,
                 unet: Optional[dict] = None,
                 unet_pretrained: Optional[str] = None,
                 num_train_timesteps: int = 1000,
                 beta_schedule: str = 'linear',
                 test_timestep: int = 250,
                 num_inference_steps: int = 5,
                 condition_weight: float = 3.0,
                 feature_extractor: dict = dict(
                     arch='wide_resnet50_2', layers=('layer1', 'layer2',
                                                     'layer3')),
                 backbone_checkpoint: Optional[str] = None,
                 feature_weight: float = 0.5,
                 image_topk: float = 0.01,
                 seed: int = 0,
                 smooth_sigma: float = 4.0,
                 image_threshold: float = 0.5,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor,
            smooth_sigma=smooth_sigma,
            image_threshold=image_threshold,
            init_cfg=init_cfg)
        from diffusers import DDPMScheduler, UNet2DModel
        if unet_pretrained is not None:
            self.unet = UNet2DModel.from_pretrained(
                unet_pretrained, local_files_only=True)
        else:
            self.unet = UNet2DModel(**dict(unet or DEFAULT_UNET))
        self.scheduler = DDPMScheduler(
            num_train_timesteps=num_train_timesteps,
            beta_schedule=beta_schedule)
        if not 0 < test_timestep < num_train_timesteps:
            raise ValueError('test_timestep must be in (0, '
                             f'{num_train_timesteps}), got {test_timestep}')
        self.test_timestep = int(test_timestep)
        self.num_inference_steps = max(1, int(num_inference_steps))
        self.condition_weight = float(condition_weight)
        feature_extractor = dict(feature_extractor)
        if backbone_checkpoint is not None:
            feature_extractor['checkpoint'] = backbone_checkpoint
        self.feature_extractor = ResNetPatchEmbedder(**feature_extractor)
        if not 0 <= feature_weight <= 1:
            raise ValueError('feature_weight must be in [0, 1]')
        self.feature_weight = float(feature_weight)
        self.image_topk = float(image_topk)
        self.seed = int(seed)

    def _alphas(self, device: torch.device) -> Tensor:
        return self.scheduler.alphas_cumprod.to(device=device,
                                                dtype=torch.float32)

    def loss(self, inputs: Tensor,
             data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        """DDPM epsilon-prediction MSE on normal images."""
        noise = torch.randn_like(inputs)
        t = torch.randint(
            0, self.scheduler.config.num_train_timesteps,
            (inputs.shape[0], ), device=inputs.device)
        alphas = self._alphas(inputs.device)[t].view(-1, 1, 1, 1)
        noisy = alphas.sqrt() * inputs + (1 - alphas).sqrt() * noise
        pred = self.unet(noisy, t).sample
        return dict(loss_diffusion=F.mse_loss(pred.float(), noise.float()))

    def timesteps(self) -> List[int]:
        """Descending DDIM timesteps from ``test_timestep``."""
        n = self.num_inference_steps
        steps = torch.linspace(self.test_timestep, 0, n + 1).round().long()
        return sorted(set(int(s) for s in steps[:-1]), reverse=True)

    @torch.no_grad()
    def reconstruct(self, inputs: Tensor) -> Tensor:
        """Conditioned DDIM reconstruction (B, 3, H, W) of ``inputs``."""
        alphas = self._alphas(inputs.device)
        gen = torch.Generator(device='cpu').manual_seed(self.seed)
        noise = torch.randn(inputs.shape, generator=gen).to(inputs)
        steps = self.timesteps()
        a_t = alphas[steps[0]]
        x = a_t.sqrt() * inputs + (1 - a_t).sqrt() * noise
        for i, t in enumerate(steps):
            a_t = alphas[t]
            a_prev = alphas[steps[i + 1]] if i + 1 < len(steps) else \
                alphas.new_tensor(1.0)
            t_batch = torch.full((inputs.shape[0], ), t, device=x.device,
                                 dtype=torch.long)
            eps = self.unet(x, t_batch).sample.float()
            y_t = a_t.sqrt() * inputs + (1 - a_t).sqrt() * eps
            eps = eps - self.condition_weight * (1 - a_t).sqrt() * (y_t - x)
            x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
            x0 = x0.clamp(-1, 1)
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        return x.clamp(-1, 1)

    def distance_maps(self, inputs: Tensor,
                      recon: Tensor) -> Tuple[Tensor, Tensor]:
        """Feature (1 - cos)/2 and pixel |.|/2 maps (B, H, W) in [0, 1]."""
        size = inputs.shape[-2:]
        pix = (inputs - recon).abs().mean(dim=1) / 2.0
        f_in = self.feature_extractor.stage_features(inputs)
        f_rec = self.feature_extractor.stage_features(recon)
        feat = 0
        for name in f_in:
            d = 1.0 - F.cosine_similarity(f_in[name], f_rec[name], dim=1)
            feat = feat + F.interpolate(
                d[:, None], size=size, mode='bilinear',
                align_corners=False)[:, 0]
        feat = feat / len(f_in) / 2.0
        return feat.clamp(0, 1), pix.clamp(0, 1)

    def anomaly_maps(
        self,
        inputs: Tensor,
        data_samples: Optional[List[DetDataSample]] = None
    ) -> Tuple[Tensor, Tensor]:
        recon = self.reconstruct(inputs)
        feat, pix = self.distance_maps(inputs, recon)
        w = self.feature_weight
        maps = w * feat + (1 - w) * pix
        image_scores = smoothed_topk_mean(maps, self.smooth_sigma,
                                          self.image_topk)
        return maps, image_scores
