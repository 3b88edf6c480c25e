# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Paper-faithful defaults (docs/DESIGN.md, "Paper-faithful defaults"):
no null-prompt dropout in Stage 1 (Table 8), eq. 9 pixel-space noising,
eq. 13's softmax over the nouns, nouns encoded as written."""
import inspect
from pathlib import Path

import imdd_mm  # noqa: F401
import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config

from imdd_mm.models.backbones import IMDDDiffusionBackbone

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs' / 'imdd'
STAGE1 = [CONFIGS / 'stage1_imdd.py', CONFIGS / 'stage1_imdd_latents.py',
          CONFIGS / 'tiny' / 'stage1_tiny.py']


@pytest.mark.parametrize('path', STAGE1, ids=lambda p: p.name)
def test_stage1_has_no_null_prompt_dropout(path):
    assert Config.fromfile(str(path)).model.uncond_prob == 0.0


def test_backbone_defaults_to_eq9_pixel_noise():
    default = inspect.signature(IMDDDiffusionBackbone).parameters[
        'noise_mode'].default
    assert default == 'pixel'
    cfg = Config.fromfile(str(CONFIGS / 'stage2_visa.py'))
    assert cfg.model.backbone.noise_mode == 'pixel'
    assert cfg.model.panoptic_head.loss_grounding.softmax_over == 'words'


def test_caption_nouns_are_encoded_as_written():
    """CLIP_text(w_k): a noun is not wrapped in class-name prompts; the
    prompt ensembling stays with the class names."""
    register_all_modules()
    cfg = Config.fromfile(str(CONFIGS / 'tiny' / 'stage2_tiny.py'))
    model = MODELS.build(cfg.model)
    head = model.panoptic_head
    enc = head.text_encoder
    words, mask = head.encode_words([['crack', 'tile'], ['tile']],
                                    torch.device('cpu'))
    assert mask.tolist() == [[True, True], [True, False]]
    plain = F.normalize(enc.encode(['crack', 'tile']).float(), dim=-1)
    assert torch.allclose(words[0], plain, atol=1e-6)
    assert torch.allclose(words[1, 0], plain[1], atol=1e-6)
    prompted = enc.encode_names(['crack'], head.prompt_templates)
    assert not torch.allclose(plain[0], prompted[0], atol=1e-3)
    # class names keep the prompt ensemble
    head.set_vocabulary(['crack'])
    assert torch.allclose(head.class_embeddings[0], prompted[0], atol=1e-6)

    # nouns through prompt templates only when asked for
    cfg.model.panoptic_head.noun_templates = ['a photo of a {}.']
    opt_in = MODELS.build(cfg.model).panoptic_head
    words, _ = opt_in.encode_words([['crack']], torch.device('cpu'))
    expected = F.normalize(enc.encode(['a photo of a crack.']).float(),
                           dim=-1)
    assert torch.allclose(words[0, 0], expected[0], atol=1e-6)
