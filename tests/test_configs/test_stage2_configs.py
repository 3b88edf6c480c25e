# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Stage-2 / seg configs: they parse, follow paper Table 9, and the
full-size model builds with random weights (meta device, no network) with
the paper's component sizes."""
from pathlib import Path

import imdd_mm  # noqa: F401
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs' / 'imdd'
STAGE2 = sorted(CONFIGS.glob('stage2_*.py'))
ABLATIONS = sorted((CONFIGS / 'ablations').glob('*.py'))
SEG = sorted(p for p in (CONFIGS / 'seg').glob('*.py')
             if not p.name.startswith('_'))
ALL = STAGE2 + ABLATIONS + SEG + [CONFIGS / 'tiny' / 'stage2_tiny.py']


def test_expected_configs_exist():
    names = {p.name for p in STAGE2}
    assert {'stage2_mvtec.py', 'stage2_visa.py', 'stage2_magnetic_tile.py',
            'stage2_neu_det.py'} <= names
    assert len(ABLATIONS) == 3 and len(SEG) >= 2


@pytest.mark.parametrize('path', ALL, ids=lambda p: p.name)
def test_config_parses_with_plugin_imports(path):
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports == dict(
        imports=['imdd_mm'], allow_failed_imports=False)
    expected_scope = 'mmseg' if path.parent.name == 'seg' else 'mmdet'
    assert cfg.default_scope == expected_scope
    assert cfg.model.type in ('IMDDMask2Former', 'IMDDEncoderDecoder')


@pytest.mark.parametrize('path', STAGE2, ids=lambda p: p.name)
def test_stage2_follows_table9(path):
    cfg = Config.fromfile(str(path))
    ow = cfg.optim_wrapper
    assert ow.type == 'AmpOptimWrapper'  # FP16
    assert ow.optimizer.type == 'AdamW'
    assert ow.optimizer.lr == 5e-5 and ow.optimizer.weight_decay == 1e-4
    assert ow.clip_grad.max_norm == 0.01
    warmup, poly = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.end == 500
    assert not warmup.by_epoch
    assert poly.type == 'PolyLR' and poly.power == 0.9
    assert cfg.train_cfg.max_epochs == 50
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr.base_batch_size == 16
    model = cfg.model
    assert model.cond_mode == 'implicit'
    assert model.backbone.timestep == 50
    head = model.panoptic_head
    assert head.num_queries == 100
    assert head.loss_mask.loss_weight == 1.0
    assert head.loss_cls.loss_weight == 0.5
    assert head.loss_grounding.loss_weight == 0.5
    assert head.pixel_decoder.type == 'MultiScaleFPNPixelDecoder'
    assert model.stage1_checkpoint is None  # weights are opt-in
    assert dict(type='VocabularyHook') in cfg.custom_hooks


def test_ablation_switches():
    cfgs = {p.stem: Config.fromfile(str(p)).model for p in ABLATIONS}
    assert cfgs['stage2_visa_no_implicit'].cond_mode == 'null'
    assert cfgs['stage2_visa_no_conditioning'].cond_mode == 'none'
    assert cfgs['stage2_visa_no_grounding'].panoptic_head.loss_grounding \
        is None


@pytest.mark.slow
def test_full_size_model_builds_with_paper_sizes():
    """SD-1.5 U-Net 859.5M (+-0.5%), captioner MLP 0.25-0.35M; trainable
    Mask2Former part reported (paper: 45M; this FPN head: ~20.5M)."""
    register_all_modules()
    cfg = Config.fromfile(str(CONFIGS / 'stage2_visa.py'))
    cfg.model.allow_random_frozen = True  # no weights at test time
    with torch.device('meta'):
        model = MODELS.build(cfg.model)

    def count(module):
        return sum(p.numel() for p in module.parameters())

    assert count(model.backbone.unet) == pytest.approx(859.5e6, rel=5e-3)
    assert 0.25e6 <= count(model.captioner.mlp) <= 0.35e6
    assert model.panoptic_head.text_dim == 768
    assert model.panoptic_head.num_queries == 100
    assert model.panoptic_head.num_transformer_decoder_layers == 9
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 15e6 <= trainable <= 50e6, trainable
    # only the mask generator trains; frozen towers stay hidden
    assert all(n.startswith('panoptic_head.')
               for n, p in model.named_parameters() if p.requires_grad)
    assert not [k for k in model.state_dict()
                if not k.startswith('panoptic_head.')]


def _sd_vae_cached() -> bool:
    from huggingface_hub import try_to_load_from_cache
    found = try_to_load_from_cache(
        'stable-diffusion-v1-5/stable-diffusion-v1-5', 'vae/config.json')
    return isinstance(found, str)


PAPER_SCALE = [CONFIGS / 'stage2_visa.py', CONFIGS / 'stage1_imdd.py',
               CONFIGS / 'seg' / 'imdd_seg_magnetic_tile.py']


@pytest.mark.parametrize('path', PAPER_SCALE, ids=lambda p: p.name)
def test_paper_configs_default_to_pretrained_frozen_parts(path):
    """The paper-scale configs ask for the SD-1.5 VAE and OpenAI CLIP and
    never accept random frozen weights by default."""
    cfg = Config.fromfile(str(path))
    model = cfg.model
    assert model.allow_random_frozen is False
    vae = model.vae if 'vae' in model else model.backbone.vae
    assert vae.pretrained == 'stable-diffusion-v1-5/stable-diffusion-v1-5'
    assert vae.subfolder == 'vae'
    assert model.captioner.pretrained == 'openai'
    text = (model.text_encoder if 'text_encoder' in model else
            (model.get('panoptic_head') or model.decode_head).text_encoder)
    assert text.pretrained == 'openai'


@pytest.mark.skipif(_sd_vae_cached(), reason='SD-1.5 VAE is cached here')
def test_paper_config_without_weights_fails_with_one_clear_message():
    from imdd_mm.utils.provenance import FrozenWeightsUnavailable
    register_all_modules()
    cfg = Config.fromfile(str(CONFIGS / 'stage2_visa.py'))
    with torch.device('meta'), pytest.raises(FrozenWeightsUnavailable) as e:
        MODELS.build(cfg.model)
    msg = str(e.value)
    assert 'stable-diffusion-v1-5/stable-diffusion-v1-5' in msg
    assert 'model.allow_random_frozen=True' in msg


def test_random_frozen_full_size_says_so():
    """With the switch, a full-size model with random frozen parts records
    them (with what was asked for) and warns at build."""
    import logging

    from mmengine.logging import MMLogger

    from imdd_mm.utils.provenance import any_random_frozen
    register_all_modules()
    cfg = Config.fromfile(str(CONFIGS / 'stage2_visa.py'))
    cfg.model.allow_random_frozen = True
    cfg.model.backbone.vae.pretrained = '/nonexistent/sd15'
    warnings = []

    class Keep(logging.Handler):

        def emit(self, record):
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Keep()
    logger.addHandler(handler)
    try:
        with torch.device('meta'):
            model = MODELS.build(cfg.model)
    finally:
        logger.removeHandler(handler)
    sources = model.frozen_sources()
    assert any_random_frozen(sources)
    assert sources['backbone.unet']['kind'] == 'random'  # no Stage 1 given
    vae = sources['backbone.vae']
    assert vae['kind'] == 'random'
    assert vae['fallback_for']['pretrained'] == '/nonexistent/sd15'
    assert any('RANDOM FROZEN WEIGHTS' in w and 'backbone.vae' in w
               for w in warnings)
