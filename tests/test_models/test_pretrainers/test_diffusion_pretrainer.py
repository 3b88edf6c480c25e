# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""IMDDDiffusionPretrainer: objective, conditioning, frozen parts, configs."""
import imdd_mm  # noqa: F401,I001

import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import BaseDataElement

from mmdet.structures import DetDataSample

from .stage1_utils import FULL_CFG, build_tiny_pretrainer

CAPTIONS = ['magnetic tile with a crack defect', 'blowhole on a tile',
            'defect-free magnetic tile surface', 'frayed tile edge']


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return build_tiny_pretrainer()


def _batch(model, n=4, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (n, 3, size, size), generator=g,
                         dtype=torch.uint8)
    samples = [DetDataSample(metainfo=dict(caption=c))
               for c in (CAPTIONS * n)[:n]]
    return model.data_preprocessor(
        dict(inputs=list(imgs), data_samples=samples), True)


def test_preprocessor_maps_to_minus_one_one(model):
    data = _batch(model)
    x = data['inputs']
    assert x.shape == (4, 3, 64, 64)
    assert x.min() >= -1 and x.max() <= 1
    assert x.min() < -0.9 and x.max() > 0.9


def test_loss_terms_and_every_trainable_param_gets_grad(model):
    data = _batch(model)
    model.zero_grad()
    torch.manual_seed(1)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_diff', 'loss_imp', 'imp_cos', 'caption_frac'}
    for v in losses.values():
        assert torch.isfinite(v)
    # L_imp = 0.3 (1 - cos) with cos the logged mean cosine
    assert torch.allclose(losses['loss_imp'],
                          0.3 * (1 - losses['imp_cos']), atol=1e-6)
    (losses['loss_diff'] + losses['loss_imp']).backward()
    trainable = [(n, p) for n, p in model.named_parameters()
                 if p.requires_grad]
    assert trainable
    assert {n.split('.')[0] for n, _ in trainable} == {'unet', 'captioner'}
    no_grad = [n for n, p in trainable
               if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


@pytest.mark.parametrize('caption_prob', [0.0, 1.0])
def test_all_params_used_whatever_the_branch(caption_prob):
    """With every sample on one branch the other still has a (zero-weight)
    path, and L_imp keeps the MLP used: no unused parameters for DDP."""
    torch.manual_seed(0)
    m = build_tiny_pretrainer(caption_prob=caption_prob, uncond_prob=0.0)
    data = _batch(m, n=2)
    losses = m(**data, mode='loss')
    assert float(losses['caption_frac']) == caption_prob
    (losses['loss_diff'] + losses['loss_imp']).backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)
    mlp_grad = sum(p.grad.abs().sum() for p in m.captioner.mlp.parameters())
    assert mlp_grad > 0


def test_condition_mixing_and_null_dropout(model):
    e_t = torch.randn(3, 1, 384)
    t_imp = torch.randn(3, 1, 384)
    use = torch.tensor([True, False, True])
    none = torch.zeros(3, dtype=torch.bool)
    c = model.condition(e_t, t_imp, use_caption=use, drop=none)
    assert c.shape == (3, 1, 384)
    assert torch.equal(c[0], e_t[0]) and torch.equal(c[2], e_t[2])
    assert torch.equal(c[1], t_imp[1])
    drop = torch.tensor([False, True, False])
    c = model.condition(e_t, t_imp, use_caption=use, drop=drop)
    null = model.encode_text([''])[0]
    assert torch.allclose(c[1, 0], null)
    assert torch.equal(c[0], e_t[0])


def test_null_condition_zero():
    m = build_tiny_pretrainer(null_condition='zero')
    assert torch.count_nonzero(m.null_embedding()) == 0
    with pytest.raises(ValueError, match='null_condition'):
        build_tiny_pretrainer(null_condition='blank')


def test_frozen_parts_hidden_and_shared_by_deepcopy(model):
    keys = model.state_dict().keys()
    assert keys and all(k.startswith(('unet.', 'captioner.mlp.'))
                        for k in keys)
    assert not any(p.requires_grad for p in model.vae.parameters())
    assert not any(p.requires_grad for p in
                   model.captioner.visual.parameters())
    model.train()
    assert not model.vae.training and model.unet.training
    ema = copy.deepcopy(model)  # what mmengine's EMA model does
    assert ema.vae is model.vae and ema.text_encoder is model.text_encoder
    assert ema.captioner.visual is model.captioner.visual
    assert ema.unet is not model.unet
    assert ema.captioner.mlp[0].weight is not model.captioner.mlp[0].weight


def test_schedule_and_init(model):
    sched = model.noise_scheduler
    assert sched.config.num_train_timesteps == 1000
    assert sched.betas[0].item() == pytest.approx(1e-4)
    assert sched.betas[-1].item() == pytest.approx(0.02)
    assert torch.allclose(sched.betas[1:] - sched.betas[:-1],
                          torch.full((999, ), (0.02 - 1e-4) / 999),
                          atol=1e-7)
    # Xavier-uniform with zero bias on the captioner MLP (§11.3)
    lin = model.captioner.mlp[0]
    bound = (6 / (lin.in_features + lin.out_features))**0.5
    assert lin.weight.abs().max() <= bound and lin.bias.abs().sum() == 0
    # He (fan_out) on the U-Net's convs, zero biases
    conv = model.unet.conv_in
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.std().item() == pytest.approx(
        (2 / fan_out)**0.5, rel=0.35)
    assert conv.bias.abs().sum() == 0


def test_gradient_checkpointing_switch():
    m = build_tiny_pretrainer(gradient_checkpointing=True)
    assert m.unet.is_gradient_checkpointing
    m.train()
    data = _batch(m, n=2)
    losses = m(**data, mode='loss')
    (losses['loss_diff'] + losses['loss_imp']).backward()
    assert m.unet.conv_in.weight.grad is not None


def test_predict_is_deterministic(model):
    data = _batch(model, n=2)
    model.eval()
    a = model(**copy.deepcopy(data), mode='predict')
    b = model(**copy.deepcopy(data), mode='predict')
    model.train()
    assert a[0].pred_denoise_loss == b[0].pred_denoise_loss
    assert a[0].pred_denoise_loss > 0
    assert -1 <= a[1].pred_imp_cos <= 1


def test_bad_inputs(model):
    data = _batch(model, n=2)
    with pytest.raises(ValueError, match='caption'):
        model(data['inputs'], [DetDataSample(), DetDataSample()],
              mode='loss')
    with pytest.raises(ValueError, match='cross_attention_dim'):
        build_tiny_pretrainer(text_encoder=dict(
            type='CLIPTextEncoder',
            model_name=dict(
                embed_dim=512,
                vision_cfg=dict(image_size=32, layers=1, width=32,
                                patch_size=8),
                text_cfg=dict(context_length=16, vocab_size=49408, width=32,
                              heads=2, layers=1))))


def test_latent_input_mode(model):
    """Precomputed VAE moments + embeddings give the same objective path."""
    m = build_tiny_pretrainer(input_type='latent')
    moments = torch.randn(2, 8, 8, 8)
    samples = []
    for cap in CAPTIONS[:2]:
        ds = BaseDataElement(metainfo=dict(caption=cap))
        ds.text_embed = m.encode_text([cap])[0]
        ds.image_embed = torch.randn(512)
        samples.append(ds)
    losses = m(moments, samples, mode='loss')
    (losses['loss_diff'] + losses['loss_imp']).backward()
    assert m.captioner.mlp[0].weight.grad is not None
    z = m.latents_from_moments(moments)
    assert z.shape == (2, 4, 8, 8)


def test_full_config_reproduces_table8():
    cfg = Config.fromfile(str(FULL_CFG))
    m = cfg.model
    assert m.type == 'IMDDDiffusionPretrainer'
    assert m.unet.config.block_out_channels == (320, 640, 1280, 1280)
    assert m.unet.config.cross_attention_dim == 768
    assert m.unet.init == 'he_xavier'
    assert m.text_encoder.model_name == 'ViT-L-14'
    assert m.captioner.in_dim == 512 and m.captioner.out_dim == 768
    assert (m.num_train_timesteps, m.beta_start, m.beta_end) == \
        (1000, 1e-4, 0.02)
    assert m.caption_prob == 0.5 and m.imp_loss_weight == 0.3
    opt = cfg.optim_wrapper
    assert opt.type == 'AmpOptimWrapper' and opt.dtype == 'float16'
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.lr == 1e-4
    assert tuple(opt.optimizer.betas) == (0.9, 0.999)
    assert opt.optimizer.weight_decay == 1e-4
    assert opt.clip_grad.max_norm == 1.0
    assert cfg.train_dataloader.batch_size * cfg.num_gpus == 256
    assert cfg.auto_scale_lr.base_batch_size == 256
    assert cfg.train_cfg.max_epochs == 100
    warm, cos = cfg.param_scheduler
    assert warm.type == 'LinearLR' and not warm.by_epoch
    assert warm.end == 5000
    assert warm.start_factor * opt.optimizer.lr == pytest.approx(1e-6)
    assert cos.type == 'CosineAnnealingLR' and cos.eta_min == 1e-6
    assert cos.convert_to_iter_based
    ema, = cfg.custom_hooks
    assert ema.type == 'EMAHook' and ema.interval == 1
    assert 1 - ema.momentum == pytest.approx(0.9999)  # mmengine: 1 - decay
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports.imports == ['imdd_mm']
    aug = {t.type: t for t in cfg.train_pipeline}
    flips = [t.direction for t in cfg.train_pipeline
             if t.type == 'RandomFlip']
    assert sorted(flips) == ['horizontal', 'vertical']
    assert all(t.prob == 0.5 for t in cfg.train_pipeline
               if t.type == 'RandomFlip')
    assert aug['RandomRotateImage'].max_angle == 15
    cj = aug['ColorJitterBSCH']
    assert (cj.brightness, cj.saturation, cj.contrast, cj.hue) == \
        (0.2, 0.2, 0.1, 0.05)
    assert tuple(aug['RandomResizedCropImage'].scale) == (0.8, 1.0)
    assert aug['RandomResizedCropImage'].size == 512
    assert 'caption' in aug['PackDetInputs'].meta_keys


def test_latent_config_inherits_table8():
    cfg = Config.fromfile(str(FULL_CFG.parent / 'stage1_imdd_latents.py'))
    assert cfg.model.input_type == 'latent'
    assert cfg.model.data_preprocessor == dict(type='BaseDataPreprocessor')
    assert cfg.train_dataloader.dataset.type == 'LatentCaptionDataset'
    assert [t.type for t in cfg.train_dataloader.dataset.pipeline] == \
        ['RandomFlipLatent', 'PackLatentInputs']
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.custom_hooks[0].momentum == 1e-4
