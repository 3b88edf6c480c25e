# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Frozen feature extractors shared by the anomaly baselines.

- :class:`ResNetPatchEmbedder`: torchvision (Wide-)ResNet mid-level patch
  features with PatchCore's local aggregation (PatchCore, SimpleNet and the
  diffusion baseline's feature distance).
- :func:`build_open_clip`: an open_clip CLIP model from a local checkpoint,
  an open_clip tag, or a config dict (random weights; tests).
- :class:`ViTPatchExtractor`: intermediate patch tokens of a torchvision
  ``VisionTransformer`` or an open_clip image tower (MuSc-style scoring).

Weights are only ever read from local files: nothing here downloads.
"""
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import IMAGENET_MEAN, IMAGENET_STD, freeze_module, renormalize


def load_local_state_dict(path: str) -> Dict[str, Tensor]:
    """Read a state dict from a local file (``.pth``/``.pt``/``.bin`` via
    the restricted unpickler, or ``.safetensors``).

    Unwraps ``state_dict``/``model`` containers. Raises a clear error when
    the file is missing.
    """
    path = os.path.expanduser(str(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'backbone weights {path!r} not found: pass a local file '
            '(nothing is downloaded)')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        state = load_file(path)
    else:
        from imdd_mm.utils.checkpoint import safe_torch_load
        state = safe_torch_load(path, map_location='cpu')
    for key in ('state_dict', 'model'):
        if isinstance(state, dict) and key in state and isinstance(
                state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f'{path}: expected a state dict, got {type(state)}')
    return {k[len('module.'):] if k.startswith('module.') else k: v
            for k, v in state.items()}


class ResNetPatchEmbedder(nn.Module):
    """Frozen torchvision ResNet/WideResNet patch features (PatchCore).

    Each selected stage output is locally aggregated (``patch_size`` ×
    ``patch_size`` average pooling, stride 1), resized to the resolution of
    the first selected stage, projected per stage to ``pretrain_embed_dim``
    channels by adaptive average pooling over channels, concatenated and
    pooled again to ``embed_dim`` channels.

    Args:
        arch (str): torchvision model name. Defaults to
            ``'wide_resnet50_2'`` (layer2: 512 ch, stride 8; layer3: 1024 ch,
            stride 16).
        checkpoint (str, optional): Local torchvision state-dict file.
            ``None`` keeps random weights (tests only).
        layers (Sequence[str]): Stages to use. Defaults to layer2 + layer3.
        patch_size (int): Local aggregation neighbourhood. Defaults to 3.
        pretrain_embed_dim (int): Per-stage channels. Defaults to 1024.
        embed_dim (int): Output channels. Defaults to 1024.

    Output:
        ``forward(x)`` with ``x`` (B, 3, H, W) in [-1, 1] returns
        (B, embed_dim, H/s, W/s), ``s`` = ``stride`` (8 for layer2).
    """

    STAGE_STRIDES = dict(layer1=4, layer2=8, layer3=16, layer4=32)

    def __init__(self,
                 arch: str = 'wide_resnet50_2',
                 checkpoint: Optional[str] = None,
                 layers: Sequence[str] = ('layer2', 'layer3'),
                 patch_size: int = 3,
                 pretrain_embed_dim: int = 1024,
                 embed_dim: int = 1024) -> None:
        super().__init__()
        import torchvision
        self.layers = tuple(layers)
        for layer in self.layers:
            if layer not in self.STAGE_STRIDES:
                raise ValueError(f'unknown ResNet stage {layer!r}')
        net = getattr(torchvision.models, arch)(weights=None)
        if checkpoint is not None:
            state = load_local_state_dict(checkpoint)
            missing, _ = net.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith('fc.')]
            if missing:
                raise KeyError(f'{checkpoint}: not a {arch} state dict '
                               f'(missing {missing[:5]} ...)')
        last = max(int(layer[-1]) for layer in self.layers)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.stages = nn.ModuleDict(
            {f'layer{i}': getattr(net, f'layer{i}')
             for i in range(1, last + 1)})
        self.patch_size = int(patch_size)
        self.pretrain_embed_dim = int(pretrain_embed_dim)
        self.embed_dim = int(embed_dim)
        self.stride = self.STAGE_STRIDES[self.layers[0]]
        freeze_module(self)

    def stage_features(self, x: Tensor,
                       normalized: bool = False) -> Dict[str, Tensor]:
        """Raw stage outputs for ``x`` (B, 3, H, W) in [-1, 1], or already
        ImageNet-normalised when ``normalized``."""
        if not normalized:
            x = renormalize(x, IMAGENET_MEAN, IMAGENET_STD)
        x = self.stem(x)
        feats = {}
        for name, stage in self.stages.items():
            x = stage(x)
            if name in self.layers:
                feats[name] = x
        return feats

    def forward(self, x: Tensor) -> Tensor:
        feats = self.stage_features(x)
        size = feats[self.layers[0]].shape[-2:]
        pad = self.patch_size // 2
        embeds = []
        for name in self.layers:
            f = feats[name]
            if self.patch_size > 1:
                f = F.avg_pool2d(f, self.patch_size, stride=1, padding=pad,
                                 count_include_pad=False)
            if f.shape[-2:] != size:
                f = F.interpolate(
                    f, size=size, mode='bilinear', align_corners=False)
            embeds.append(_pool_channels(f, self.pretrain_embed_dim))
        return _pool_channels(torch.cat(embeds, dim=1), self.embed_dim)


def _pool_channels(x: Tensor, dim: int) -> Tensor:
    """Adaptive average pooling over the channel axis of (B, C, H, W)."""
    b, c, h, w = x.shape
    if c == dim:
        return x
    flat = x.permute(0, 2, 3, 1).reshape(-1, 1, c)
    flat = F.adaptive_avg_pool1d(flat, dim)
    return flat.reshape(b, h, w, dim).permute(0, 3, 1, 2).contiguous()


def build_open_clip(model_name: str = 'ViT-B-16',
                    pretrained: Optional[str] = None,
                    model_cfg: Optional[dict] = None) -> nn.Module:
    """Build an open_clip CLIP model without network access.

    Args:
        model_name (str): open_clip architecture name.
        pretrained (str, optional): Local checkpoint file or an open_clip
            tag already present in the local cache.
        model_cfg (dict, optional): ``embed_dim``, ``vision_cfg``,
            ``text_cfg`` of ``open_clip.model.CLIP``; builds that model with
            random weights (tiny models in tests) and ignores the rest.

    Returns:
        nn.Module: The CLIP model in eval mode.
    """
    import open_clip
    if model_cfg is not None:
        model = open_clip.model.CLIP(**model_cfg)
    else:
        if pretrained is not None and os.path.sep in str(pretrained) and \
                not os.path.isfile(os.path.expanduser(str(pretrained))):
            raise FileNotFoundError(
                f'open_clip weights {pretrained!r} not found')
        # OpenAI weights need QuickGELU, however they are given
        from imdd_mm.models.text_encoders.openclip_utils import \
            openclip_model_name
        model = open_clip.create_model(
            openclip_model_name(model_name, pretrained),
            pretrained=pretrained)
    return model.eval()


class ViTPatchExtractor(nn.Module):
    """Frozen ViT patch tokens of selected blocks.

    Args:
        source (str): ``'torchvision'`` (``torchvision.models.<arch>``) or
            ``'open_clip'`` (the image tower of :func:`build_open_clip`).
        arch (str): torchvision arch / open_clip model name. Defaults to
            ``'vit_b_16'``.
        checkpoint (str, optional): Local weights (random if ``None``).
        layers (Sequence[int]): 0-based block indices whose token outputs
            are returned.
        model_cfg (dict, optional): torchvision ``VisionTransformer``
            kwargs or open_clip CLIP cfg for tiny random models.

    Output:
        ``forward(x)`` with ``x`` (B, 3, S, S) in [-1, 1] (``S`` =
        ``image_size``) returns a list of (B, h*w, C) patch tokens (class
        token removed), one per selected block, and ``grid`` = (h, w).
    """

    def __init__(self,
                 source: str = 'torchvision',
                 arch: str = 'vit_b_16',
                 checkpoint: Optional[str] = None,
                 layers: Sequence[int] = (2, 5, 8, 11),
                 model_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.source = source
        self.layers = [int(i) for i in layers]
        if source == 'torchvision':
            import torchvision
            if model_cfg is not None:
                net = torchvision.models.VisionTransformer(**model_cfg)
            else:
                net = getattr(torchvision.models, arch)(weights=None)
            if checkpoint is not None:
                net.load_state_dict(load_local_state_dict(checkpoint))
            self.net = net
            self.image_size = net.image_size
            self.patch_size = net.patch_size
            self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        elif source == 'open_clip':
            from .base import CLIP_MEAN, CLIP_STD
            clip = build_open_clip(arch, checkpoint, model_cfg)
            self.net = clip.visual
            size = self.net.image_size
            self.image_size = size[0] if isinstance(size, tuple) else size
            psize = self.net.patch_size
            self.patch_size = psize[0] if isinstance(psize, tuple) else psize
            self.mean, self.std = CLIP_MEAN, CLIP_STD
        else:
            raise ValueError(f'unknown ViT source {source!r}')
        freeze_module(self)

    def forward(self, x: Tensor) -> Union[List[Tensor], tuple]:
        outs, _, grid = self.forward_with_cls(x)
        return outs, grid

    def forward_with_cls(self, x: Tensor) -> Tuple[List[Tensor], Tensor,
                                                   tuple]:
        """Patch tokens as :meth:`forward`, plus the class token (B, C) of
        the last selected block (an image-level feature)."""
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ValueError(
                f'ViT expects {self.image_size}x{self.image_size} inputs, '
                f'got {tuple(x.shape[-2:])}: resize in the pipeline')
        x = renormalize(x, self.mean, self.std)
        grid = (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)
        if self.source == 'open_clip':
            out = self.net.forward_intermediates(
                x, indices=self.layers, intermediates_only=True,
                output_fmt='NLC', output_extra_tokens=True)
            cls = out['image_intermediates_prefix'][-1][:, 0]
            return list(out['image_intermediates']), cls, grid
        net = self.net
        tokens = net._process_input(x)
        cls = net.class_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1)
        tokens = net.encoder.dropout(tokens + net.encoder.pos_embedding)
        outs = []
        for i, block in enumerate(net.encoder.layers):
            tokens = block(tokens)
            if i in self.layers:
                outs.append(tokens[:, 1:])
            if i >= max(self.layers):
                break
        return outs, tokens[:, 0], grid
