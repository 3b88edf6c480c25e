# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""CLIP prompt-based anomaly detection in the spirit of WinCLIP (Jeong et
al., CVPR 2023) and PromptAD (Li et al., CVPR 2024), written for imdd-mm.

- **Zero-shot** (WinCLIP): compositional prompt ensembles (state words ×
  templates) give one "normal" and one "anomalous" text embedding; projected
  patch tokens, averaged over ``window_sizes`` windows, are classified
  against them (softmax over the two), the scales are combined by a
  harmonic mean; the image score is the same softmax on the pooled image
  embedding.
- **Few-shot** (WinCLIP+): a memory of intermediate patch tokens of ``k``
  normal images (the training set of the config, e.g. ``indices=4``);
  the patch score is ``(1 - max cos) / 2`` against it, averaged with the
  zero-shot map.
- **Learnable prompts** (PromptAD flavour, optional): ``n_ctx`` learnable
  context vectors shared by the normal prompts and, by semantic
  concatenation, by the anomalous ones (the context followed by an
  anomaly suffix). Trained on normal images only with a cross-entropy
  towards "normal" plus an explicit margin between the two similarities.

The object in the prompts is the one of each image's dataset: with
``object_name=None`` (the configs) every data sample's
``metainfo['object_name']`` (set by ``AnomalyCocoDataset`` from the
taxonomy: ``metal_nut`` -> "metal nut", ``pcb1`` -> "printed circuit
board") picks its text embeddings, so one config serves every category and
pooled runs; an explicit ``object_name`` (e.g. from ``--cfg-options
model.object_name=cable``) overrides it, cleaned the same way.

Departures from the originals (hence "-style" in tables): window scores
pool patch tokens (WinCLIP re-encodes masked windows with the image
encoder); the learnable-prompt loss is a cross-entropy towards the normal
prompt plus a margin (PromptAD's semantic concatenation and explicit
anomaly margin are approximated by the suffix prompts sharing the context).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import OptConfigType, OptMultiConfig
from .base import CLIP_MEAN, CLIP_STD, BaseAnomalyDetector, renormalize
from .dataset import object_prompt_name
from .feature_extractors import build_open_clip

NORMAL_STATES = ('{}', 'flawless {}', 'perfect {}', 'unblemished {}',
                 '{} without flaw', '{} without defect', '{} without damage')
ANOMALOUS_STATES = ('damaged {}', 'broken {}', '{} with flaw',
                    '{} with defect', '{} with damage')
TEMPLATES = ('a cropped photo of the {}.', 'a close-up photo of a {}.',
             'a photo of a {}.', 'a bright photo of a {}.',
             'a dark photo of the {}.', 'a photo of the small {}.',
             'a photo of the large {}.', 'a jpeg corrupted photo of a {}.',
             'a blurry photo of the {}.', 'a photo of a {} for visual '
             'inspection.', 'a photo of the {} for anomaly detection.')
ANOMALY_SUFFIXES = ('with flaw', 'with defect', 'with damage')


@MODELS.register_module()
class CLIPPromptAD(BaseAnomalyDetector):
    """WinCLIP/PromptAD-style anomaly detection with an open_clip model.

    Normalisation: zero-shot scores are softmax probabilities of the
    anomalous prompt and few-shot scores ``(1 - cos) / 2``; both lie in
    [0, 1] by construction and are averaged (the identity
    ``normalize_scores``; smoothing acts on these scores).

    Args:
        model_name (str): open_clip architecture. Defaults to 'ViT-B-16'.
        pretrained (str, optional): Local open_clip checkpoint file (or a
            tag already in the local cache). ``None``: random weights.
        model_cfg (dict, optional): Tiny ``open_clip.model.CLIP`` kwargs
            (tests).
        object_name (str, optional): The inspected object, e.g.
            ``'metal_nut'`` (cleaned by :func:`object_prompt_name`).
            ``None`` (default): per image, from the data samples'
            ``metainfo['object_name']`` (the dataset of the run).
        window_sizes (Sequence[int]): Odd window sizes (patches) of the
            zero-shot map. Defaults to (1, 3, 5).
        few_shot (bool): Keep a normal-patch memory filled by the training
            loop. Defaults to False (zero-shot).
        memory_layers (Sequence[int]): Blocks whose tokens form the memory.
        learnable_prompts (bool): Learn ``n_ctx`` context vectors.
        n_ctx (int): Learnable context length. Defaults to 10 (§11.2).
        margin (float): Margin between the normal and anomalous
            similarities in the prompt loss. Defaults to 0.1.
        logit_scale (float): Softmax temperature inverse. Defaults to 100.
    """

    frozen_modules = ('clip', )

    def __init__(self,
                 model_name: str = 'ViT-B-16',
                 pretrained: Optional[str] = None,
                 model_cfg: Optional[dict] = None,
                 object_name: Optional[str] = None,
                 window_sizes: Sequence[int] = (1, 3, 5),
                 few_shot: bool = False,
                 memory_layers: Sequence[int] = (5, 8, 11),
                 learnable_prompts: bool = False,
                 n_ctx: int = 10,
                 margin: float = 0.1,
                 logit_scale: float = 100.0,
                 smooth_sigma: float = 4.0,
                 image_threshold: float = 0.5,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor,
            smooth_sigma=smooth_sigma,
            image_threshold=image_threshold,
            init_cfg=init_cfg)
        import open_clip
        self.clip = build_open_clip(model_name, pretrained, model_cfg)
        for p in self.clip.parameters():
            p.requires_grad_(False)
        self.tokenizer = open_clip.tokenize if model_cfg is not None else \
            open_clip.get_tokenizer(model_name)
        visual = self.clip.visual
        size = visual.image_size
        self.image_size = size[0] if isinstance(size, tuple) else size
        psize = visual.patch_size
        self.patch_size = psize[0] if isinstance(psize, tuple) else psize
        self.object_name = None if object_name is None else \
            object_prompt_name(None, object_name)
        self.window_sizes = tuple(int(k) for k in window_sizes)
        if any(k % 2 == 0 for k in self.window_sizes):
            raise ValueError('window_sizes must be odd')
        self.few_shot = bool(few_shot)
        num_blocks = len(visual.transformer.resblocks)
        self.memory_layers = [i for i in memory_layers if i < num_blocks] \
            or [num_blocks - 1]
        self.learnable_prompts = bool(learnable_prompts)
        self.margin = float(margin)
        self.logit_scale = float(logit_scale)
        self.n_ctx = int(n_ctx)
        if self.learnable_prompts:
            width = self.clip.token_embedding.weight.shape[1]
            self.ctx = nn.Parameter(torch.randn(self.n_ctx, width) * 0.02)
        width = visual.transformer.width
        self.register_buffer('memory', torch.zeros(
            len(self.memory_layers), 0, width))
        self._pending: Dict[str, Tensor] = {}
        self._text_cache: Dict[str, Tensor] = {}

    # ------------------------------------------------------------------ #
    # text side
    # ------------------------------------------------------------------ #
    def _device(self) -> torch.device:
        return self.clip.token_embedding.weight.device

    def _ensemble(self, texts: List[str]) -> Tensor:
        tokens = self.tokenizer(texts).to(self._device())
        emb = F.normalize(self.clip.encode_text(tokens).float(), dim=-1)
        return F.normalize(emb.mean(0), dim=-1)

    def _encode_with_ctx(self, texts: List[str]) -> Tensor:
        """Encode ``'X'*n_ctx + text`` with the X embeddings replaced by
        the learnable context (CoOp-style)."""
        prefix = ' '.join(['X'] * self.n_ctx)
        tokens = self.tokenizer([f'{prefix} {t}' for t in texts]).to(
            self._device())
        clip = self.clip
        x = clip.token_embedding(tokens)
        ctx = self.ctx.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
        x = torch.cat([x[:, :1], ctx, x[:, 1 + self.n_ctx:]], dim=1)
        x = x + clip.positional_embedding.to(x.dtype)
        x = clip.transformer(x, attn_mask=clip.attn_mask)
        x = clip.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(-1)]
        if isinstance(clip.text_projection, nn.Linear):
            x = clip.text_projection(x)
        elif clip.text_projection is not None:
            x = x @ clip.text_projection
        return F.normalize(x.float(), dim=-1)

    def text_features(self, name: str) -> Tensor:
        """(2, D) normalised [normal, anomalous] text embeddings of the
        object ``name`` (cached per name outside training)."""
        cached = self._text_cache.get(name)
        if cached is not None and cached.device == self._device() and \
                not (self.learnable_prompts and self.training):
            return cached
        if self.learnable_prompts:
            normal = self._encode_with_ctx([f'{name}.'])
            anomalous = self._encode_with_ctx(
                [f'{name} {s}.' for s in ANOMALY_SUFFIXES])
            feats = torch.stack([
                F.normalize(normal.mean(0), dim=-1),
                F.normalize(anomalous.mean(0), dim=-1)
            ])
            if self.training:
                self._text_cache = {}
                return feats
            feats = feats.detach()
        else:
            with torch.no_grad():
                texts = [[t.format(s.format(name))
                          for s in states for t in TEMPLATES]
                         for states in (NORMAL_STATES, ANOMALOUS_STATES)]
                feats = torch.stack([self._ensemble(t) for t in texts])
        self._text_cache[name] = feats
        return feats

    def object_names(self, data_samples: Optional[List[DetDataSample]],
                     batch_size: int) -> List[str]:
        """The prompt object of each image: ``object_name`` when set, else
        each sample's ``metainfo['object_name']``."""
        if self.object_name is not None:
            return [self.object_name] * batch_size
        names = [s.metainfo.get('object_name') for s in data_samples or []]
        if len(names) != batch_size or any(not n for n in names):
            raise ValueError(
                'CLIPPromptAD(object_name=None) takes the object from the '
                "data samples' metainfo['object_name'] (AnomalyCocoDataset "
                'sets it); these samples have none: set model.object_name')
        return [str(n) for n in names]

    def batch_text(self, names: List[str]) -> Tensor:
        """(B, 2, D) text embeddings, one pair per image."""
        unique = {n: self.text_features(n) for n in dict.fromkeys(names)}
        return torch.stack([unique[n] for n in names])

    # ------------------------------------------------------------------ #
    # image side
    # ------------------------------------------------------------------ #
    def image_tokens(self, inputs: Tensor) -> Tuple[Tensor, Tensor,
                                                    List[Tensor], tuple]:
        """Projected patch tokens (B, N, D), pooled image embedding (B, D),
        memory-layer tokens [(B, N, width)] and the grid (h, w)."""
        if inputs.shape[-1] != self.image_size or \
                inputs.shape[-2] != self.image_size:
            raise ValueError(f'CLIP expects {self.image_size}px inputs, got '
                             f'{tuple(inputs.shape[-2:])}: resize in the '
                             'pipeline')
        visual = self.clip.visual
        x = renormalize(inputs, CLIP_MEAN, CLIP_STD)
        last = len(visual.transformer.resblocks) - 1
        indices = sorted(set(self.memory_layers + [last]))
        with torch.no_grad():
            out = visual.forward_intermediates(
                x, indices=indices, output_fmt='NLC')
        inter = dict(zip(indices, out['image_intermediates']))
        patches = visual.ln_post(inter[last])
        if visual.proj is not None:
            patches = patches @ visual.proj
        grid = (inputs.shape[-2] // self.patch_size,
                inputs.shape[-1] // self.patch_size)
        return (patches.float(), out['image_features'].float(),
                [inter[i] for i in self.memory_layers], grid)

    def _probs(self, feats: Tensor, text: Tensor) -> Tensor:
        """Softmax probability of 'anomalous' for features (B, ..., D)
        against per-image text (B, 2, D)."""
        f = F.normalize(feats, dim=-1)
        logits = self.logit_scale * torch.einsum(
            'b...d,bkd->b...k', f, text.to(f.dtype))
        return logits.softmax(dim=-1)[..., 1]

    def zero_shot(self, patches: Tensor, pooled: Tensor, grid: tuple,
                  text: Tensor) -> Tuple[Tensor, Tensor]:
        """Zero-shot maps (B, h, w) and image scores (B,) for per-image
        text (B, 2, D)."""
        b, n, d = patches.shape
        fmap = patches.transpose(1, 2).reshape(b, d, *grid)
        inv = 0
        for k in self.window_sizes:
            win = fmap if k == 1 else F.avg_pool2d(
                fmap, k, stride=1, padding=k // 2, count_include_pad=False)
            p = self._probs(win.permute(0, 2, 3, 1), text)
            inv = inv + 1.0 / p.clamp(min=1e-6)
        maps = len(self.window_sizes) / inv
        return maps, self._probs(pooled, text)

    def few_shot_maps(self, tokens: List[Tensor], grid: tuple) -> Tensor:
        """(1 - max cos) / 2 to the memory, mean over layers: (B, h, w)."""
        maps = 0
        for layer, tok in enumerate(tokens):
            mem = F.normalize(self.memory[layer].float(), dim=-1)
            q = F.normalize(tok.float(), dim=-1)
            sim = torch.stack([(qi @ mem.t()).max(dim=1).values for qi in q])
            maps = maps + (1.0 - sim) / 2.0
        return (maps / len(tokens)).view(-1, *grid)

    # ------------------------------------------------------------------ #
    # fitting
    # ------------------------------------------------------------------ #
    def _collect(self, tokens: List[Tensor],
                 data_samples: List[DetDataSample]) -> None:
        for i, sample in enumerate(data_samples):
            key = str(sample.metainfo.get('img_path', len(self._pending)))
            self._pending[key] = torch.stack([t[i] for t in tokens]).detach()

    def train_step(self, data, optim_wrapper) -> Dict[str, Tensor]:
        """Few-shot: collect the memory; learnable prompts: one step."""
        if self.learnable_prompts:
            return super().train_step(data, optim_wrapper)
        data = self.data_preprocessor(data, True)
        if self.few_shot:
            _, _, tokens, _ = self.image_tokens(data['inputs'])
            self._collect(tokens, data['data_samples'])
        return dict(memory_images=torch.tensor(float(len(self._pending))))

    def loss(self, inputs: Tensor,
             data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        """Prompt loss on normal images (learnable prompts only)."""
        if not self.learnable_prompts:
            raise RuntimeError('CLIPPromptAD has no loss without '
                               'learnable_prompts=True')
        patches, pooled, tokens, _ = self.image_tokens(inputs)
        if self.few_shot:
            self._collect(tokens, data_samples)
        text = self.batch_text(self.object_names(data_samples,
                                                 inputs.shape[0]))
        feats = F.normalize(
            torch.cat([pooled[:, None], patches], dim=1), dim=-1)
        sims = torch.einsum('bnd,bkd->bnk', feats, text)  # (B, 1+N, 2)
        logits = self.logit_scale * sims
        target = torch.zeros(
            logits.shape[:-1], dtype=torch.long, device=logits.device)
        loss_ce = F.cross_entropy(logits.flatten(0, 1), target.flatten())
        loss_margin = F.relu(sims[..., 1] - sims[..., 0] +
                             self.margin).mean()
        return dict(loss_prompt=loss_ce, loss_margin=loss_margin)

    @torch.no_grad()
    def finalize_fit(self) -> None:
        """Stack the collected normal tokens into ``memory``."""
        if not self._pending:
            return
        mem = torch.stack([self._pending[k] for k in sorted(self._pending)])
        # (K, L, N, C) -> (L, K*N, C)
        self.memory = mem.permute(1, 0, 2, 3).flatten(1, 2).contiguous().to(
            self.memory.device)
        self._pending = {}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        self._text_cache = {}  # learnt prompts may change
        key = prefix + 'memory'
        if key in state_dict:
            self.memory = torch.empty_like(
                state_dict[key], device=self.memory.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def anomaly_maps(
        self,
        inputs: Tensor,
        data_samples: Optional[List[DetDataSample]] = None
    ) -> Tuple[Tensor, Tensor]:
        patches, pooled, tokens, grid = self.image_tokens(inputs)
        text = self.batch_text(self.object_names(data_samples,
                                                 inputs.shape[0]))
        maps, image_scores = self.zero_shot(patches, pooled, grid, text)
        if self.few_shot:
            self.finalize_fit()
            if self.memory.shape[1] == 0:
                raise RuntimeError('few-shot CLIPPromptAD has an empty '
                                   'memory: run the training loop first')
            fs = self.few_shot_maps(tokens, grid)
            maps = 0.5 * (maps + fs)
            image_scores = 0.5 * (image_scores +
                                  fs.flatten(1).max(dim=1).values)
        maps = F.interpolate(
            maps[:, None], size=inputs.shape[-2:], mode='bilinear',
            align_corners=False)[:, 0]
        return maps, image_scores
