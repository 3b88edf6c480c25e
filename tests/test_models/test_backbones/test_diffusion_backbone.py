# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import math

import pytest
import torch
import torch.nn as nn

from imdd_mm.models.backbones import (SD15_UNET_CONFIG, TINY_UNET_CONFIG,
                                      TINY_VAE_CONFIG, IMDDDiffusionBackbone,
                                      build_unet, build_vae, count_params,
                                      ddpm_alphas_cumprod)

ALL_TAPS = ('s8', 's16', 's32', 's64', 'down_s64', 'up_s64', 'up_s32',
            'up_s16', 'up_s8', 'vae_s2', 'vae_s4')


def tiny_backbone(**kwargs):
    cfg = dict(unet=dict(config=TINY_UNET_CONFIG),
               vae=dict(config=TINY_VAE_CONFIG))
    cfg.update(kwargs)
    return IMDDDiffusionBackbone(**cfg)


@pytest.fixture(scope='module')
def backbone():
    return tiny_backbone()


def rand_img(b=2, h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g) * 2 - 1


def rand_cond(b=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 1, 384, generator=g)


def test_default_outputs_names_shapes_strides(backbone):
    img = rand_img()
    feats = backbone(img, rand_cond())
    assert list(feats) == ['s8', 's16', 's32', 's64']
    assert backbone.out_strides == {'s8': 8, 's16': 16, 's32': 32, 's64': 64}
    ch = TINY_UNET_CONFIG['block_out_channels']
    assert backbone.out_channels == {
        's8': ch[0], 's16': ch[1], 's32': ch[2], 's64': ch[3]}
    for name, f in feats.items():
        s = backbone.out_strides[name]
        assert f.shape == (2, backbone.out_channels[name], math.ceil(64 / s),
                           math.ceil(96 / s)), name
        assert f.dtype == torch.float32
        assert torch.isfinite(f).all()


def test_all_taps_shapes():
    bb = tiny_backbone(out_features=ALL_TAPS)
    feats = bb(rand_img(1, 128, 128), rand_cond(1))
    assert list(feats) == list(ALL_TAPS)
    vae_ch = TINY_VAE_CONFIG['block_out_channels']
    assert bb.out_channels['vae_s4'] == vae_ch[2]
    assert bb.out_channels['vae_s2'] == vae_ch[1]
    for name, f in feats.items():
        s = bb.out_strides[name]
        assert f.shape == (1, bb.out_channels[name], 128 // s, 128 // s)


def test_taps_equal_full_unet_forward():
    """The partial runner (no up path for encoder taps) reproduces the maps
    of diffusers' own full forward, caught with hooks."""
    bb = tiny_backbone(out_features=ALL_TAPS)
    img, cond = rand_img(2, 64, 64), rand_cond(2)
    feats = bb(img, cond)
    unet = bb.unet
    caught = {}

    def pre(name):
        return lambda m, args: caught.__setitem__(name, args[0])

    def post(name):
        return lambda m, args, out: caught.__setitem__(name, out)

    hs = [
        unet.down_blocks[0].downsamplers[0].register_forward_pre_hook(
            pre('s8')),
        unet.down_blocks[1].downsamplers[0].register_forward_pre_hook(
            pre('s16')),
        unet.down_blocks[2].downsamplers[0].register_forward_pre_hook(
            pre('s32')),
        unet.mid_block.register_forward_hook(post('s64')),
        unet.up_blocks[0].upsamplers[0].register_forward_pre_hook(
            pre('up_s64')),
        unet.up_blocks[2].upsamplers[0].register_forward_pre_hook(
            pre('up_s16')),
        unet.up_blocks[3].register_forward_hook(post('up_s8')),
    ]
    assert bb.noise_mode == 'pixel'  # eq. 9: noise the image, then encode
    with torch.no_grad():
        z_t, _ = bb.encode_latents(bb.add_noise(img))
        unet(z_t, bb.timestep, cond)
    for h in hs:
        h.remove()
    for name, ref in caught.items():
        torch.testing.assert_close(feats[name], ref, msg=name)


def test_schedule_matches_paper_and_diffusers():
    from diffusers import DDPMScheduler
    ab = ddpm_alphas_cumprod()
    T, b1, bT = 1000, 1e-4, 0.02
    betas = [b1 + (t - 1) / (T - 1) * (bT - b1) for t in range(1, T + 1)]
    ref = 1.0
    for t in range(51):
        ref *= 1 - betas[t]
    assert abs(float(ab[50]) - ref) < 1e-12
    sched = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4,
                          beta_end=0.02, beta_schedule='linear')
    torch.testing.assert_close(ab.float(), sched.alphas_cumprod)


def test_latent_noising_formula(backbone):
    from diffusers import DDPMScheduler
    img = rand_img(1, 64, 64)
    with torch.no_grad():
        z0, _ = backbone.encode_latents(img)
        h = backbone.vae.quant_conv(backbone.vae.encoder(img))
    # posterior mean x scaling factor
    torch.testing.assert_close(z0, h[:, :4] * 0.18215)
    eps = backbone.fixed_noise(z0.shape[1:], z0.device, z0.dtype)
    sched = DDPMScheduler(beta_start=1e-4, beta_end=0.02,
                          beta_schedule='linear')
    ref = sched.add_noise(z0, eps, torch.tensor([50]))
    torch.testing.assert_close(backbone.add_noise(z0), ref)


def test_noise_modes_differ_and_are_deterministic():
    img, cond = rand_img(), rand_cond()
    lat = tiny_backbone(noise_mode='latent')
    pix = tiny_backbone(noise_mode='pixel')
    f_lat, f_pix = lat(img, cond), pix(img, cond)
    assert f_lat.keys() == f_pix.keys()
    for k in f_lat:
        assert f_lat[k].shape == f_pix[k].shape
        assert not torch.allclose(f_lat[k], f_pix[k])
        torch.testing.assert_close(pix(img, cond)[k], f_pix[k], rtol=0,
                                   atol=0)
    with pytest.raises(ValueError, match='noise_mode'):
        tiny_backbone(noise_mode='both')


def test_determinism_and_batch_independence(backbone):
    img, cond = rand_img(3), rand_cond(3)
    a, b = backbone(img, cond), backbone(img, cond)
    single = backbone(img[1:2], cond[1:2])
    for k in a:
        assert torch.equal(a[k], b[k])
        torch.testing.assert_close(single[k], a[k][1:2], rtol=1e-4,
                                   atol=1e-5)
    # a second backbone (same seeds) builds the same nets and noise
    other = tiny_backbone()
    c = other(img, cond)
    for k in a:
        torch.testing.assert_close(a[k], c[k], rtol=0, atol=0)
    # another noise seed changes the features
    d = tiny_backbone(noise_seed=1)(img, cond)
    assert not torch.allclose(a['s8'], d['s8'])


def test_timestep_changes_features(backbone):
    img, cond = rand_img(1), rand_cond(1)
    f50 = backbone(img, cond)['s8']
    bb = tiny_backbone(timestep=500)
    assert not torch.allclose(f50, bb(img, cond)['s8'])
    with pytest.raises(ValueError, match='timestep'):
        tiny_backbone(timestep=1000)


def test_frozen_no_grad_not_in_state_dict_or_optimizer():
    from mmengine.optim import build_optim_wrapper

    class Net(nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone = tiny_backbone()
            self.head = nn.Conv2d(16, 1, 1)

    net = Net()
    net.train()
    feats = net.backbone(rand_img(), rand_cond())
    loss = net.head(feats['s8']).mean() + feats['s64'].mean() * 0
    loss.backward()
    assert net.head.weight.grad is not None
    frozen = list(net.backbone.unet.parameters()) + list(
        net.backbone.vae.parameters())
    assert len(frozen) > 0
    assert all(not p.requires_grad and p.grad is None for p in frozen)
    assert sorted(net.state_dict()) == ['head.bias', 'head.weight']
    assert list(net.backbone.parameters()) == []
    # the unet/vae stay in eval mode through train()
    assert not any(m.training for m in net.backbone.unet.modules())
    assert not any(m.training for m in net.backbone.vae.modules())
    optim = build_optim_wrapper(
        net, dict(optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4)))
    ids = {id(p) for g in optim.optimizer.param_groups for p in g['params']}
    assert ids == {id(net.head.weight), id(net.head.bias)}
    assert not ids & {id(p) for p in frozen}
    # a Stage-2 style checkpoint reloads strictly into a fresh model
    fresh = Net()
    fresh.load_state_dict(net.state_dict(), strict=True)
    torch.testing.assert_close(fresh.head.weight, net.head.weight)


def test_vae_decoder_dropped(backbone):
    assert backbone.vae.decoder is None


def test_unfrozen_unet_trains_and_is_saved():
    bb = tiny_backbone(frozen=False)
    keys = bb.state_dict().keys()
    assert any(k.startswith('unet.') for k in keys)
    assert not any(k.startswith('vae.') for k in keys)  # VAE stays frozen
    assert all(p.requires_grad for p in bb.parameters())
    bb.train()
    assert bb.unet.training
    feats = bb(rand_img(1, 64, 64), rand_cond(1))
    feats['s16'].mean().backward()
    assert bb.unet.conv_in.weight.grad is not None
    assert all(p.grad is None for p in bb.vae.parameters())


def test_cond_handling(backbone):
    img = rand_img(2)
    zero = backbone(img, torch.zeros(2, 1, 384))
    none = backbone(img, None)
    for k in zero:
        torch.testing.assert_close(zero[k], none[k], rtol=0, atol=0)
    flat = backbone(img, rand_cond(2)[:, 0])  # (B, C) accepted
    assert flat['s8'].shape == zero['s8'].shape
    shared = backbone(img, rand_cond(1))  # (1, L, C) broadcast
    assert shared['s8'].shape[0] == 2
    with pytest.raises(ValueError, match='cross_attention_dim'):
        backbone(img, torch.zeros(2, 1, 768))
    with pytest.raises(ValueError, match='batch'):
        backbone(img, torch.zeros(3, 1, 384))
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        backbone(img[:, :1])


def test_cond_grad_flows_to_condition_only():
    bb = tiny_backbone(cond_grad=True)
    cond = rand_cond(1).requires_grad_(True)
    bb(rand_img(1, 64, 64), cond)['s16'].mean().backward()
    assert cond.grad is not None and cond.grad.abs().sum() > 0
    assert all(p.grad is None for p in bb.unet.parameters())
    # default: no gradient through the frozen U-Net
    cond2 = rand_cond(1).requires_grad_(True)
    out = tiny_backbone()(rand_img(1, 64, 64), cond2)['s16']
    assert not out.requires_grad


def test_autocast_bf16_cpu(backbone):
    img, cond = rand_img(1, 64, 64), rand_cond(1)
    ref = backbone(img, cond)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = backbone(img, cond)
    for k in ref:
        assert out[k].shape == ref[k].shape
        assert torch.isfinite(out[k].float()).all()
        cos = nn.functional.cosine_similarity(
            out[k].float().flatten(), ref[k].flatten(), dim=0)
        assert cos > 0.95, k


def test_frozen_dtype_and_device_following():
    bb = tiny_backbone(frozen_dtype='bf16')
    assert next(bb.unet.parameters()).dtype == torch.bfloat16
    out = bb(rand_img(1, 64, 64), rand_cond(1))
    assert out['s8'].dtype == torch.float32  # cast back outside autocast
    bb.double()  # _apply reaches the hidden frozen networks
    assert next(bb.unet.parameters()).dtype == torch.float64
    assert next(bb.vae.parameters()).dtype == torch.float64


def test_gradient_checkpointing_switch():
    assert tiny_backbone(gradient_checkpointing=True).unet \
        .is_gradient_checkpointing
    assert not tiny_backbone().unet.is_gradient_checkpointing


def test_bad_out_features():
    with pytest.raises(ValueError, match='available'):
        tiny_backbone(out_features=('s4', ))


def test_registered_in_mmdet_and_mmseg():
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    cfg = dict(type='IMDDDiffusionBackbone',
               unet=dict(config=TINY_UNET_CONFIG),
               vae=dict(config=TINY_VAE_CONFIG), out_features=['s8', 's16'])
    for reg in (DET, SEG):
        bb = reg.build(cfg)
        assert isinstance(bb, IMDDDiffusionBackbone)
        assert bb.out_strides == {'s8': 8, 's16': 16}


def test_load_from_diffusers_folder(tmp_path, backbone):
    """A diffusers pipeline folder (unet/, vae/) loads the same nets."""
    unet = build_unet(dict(config=TINY_UNET_CONFIG))
    vae = build_vae(dict(config=TINY_VAE_CONFIG))
    unet.save_pretrained(tmp_path / 'unet')
    vae.save_pretrained(tmp_path / 'vae')
    bb = IMDDDiffusionBackbone(unet=dict(pretrained=str(tmp_path)),
                               vae=dict(pretrained=str(tmp_path)))
    img, cond = rand_img(1, 64, 64), rand_cond(1)
    ref, out = backbone(img, cond), bb(img, cond)
    for k in ref:
        torch.testing.assert_close(out[k], ref[k])
    # a model folder itself (config.json inside) works too
    direct = build_unet(dict(pretrained=str(tmp_path / 'unet')))
    assert count_params(direct) == count_params(unet)
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match='config.json'):
        build_unet(dict(pretrained=str(empty)))


def test_builder_cfg_errors(tmp_path):
    with pytest.raises(ValueError, match='give `config`'):
        build_unet(dict())
    with pytest.raises(KeyError, match='unknown keys'):
        build_unet(dict(config=TINY_UNET_CONFIG, foo=1))
    f = tmp_path / 'x.safetensors'
    f.write_bytes(b'')
    with pytest.raises(ValueError, match='is a file'):
        build_vae(dict(pretrained=str(f)))


def test_he_xavier_init_and_seed():
    a = build_unet(dict(config=TINY_UNET_CONFIG, init='he_xavier'))
    assert torch.count_nonzero(a.conv_in.bias) == 0
    b = build_unet(dict(config=TINY_UNET_CONFIG, seed=0))
    c = build_unet(dict(config=TINY_UNET_CONFIG, seed=1))
    d = build_unet(dict(config=TINY_UNET_CONFIG, seed=0))
    assert not torch.equal(b.conv_in.weight, c.conv_in.weight)
    assert torch.equal(b.conv_in.weight, d.conv_in.weight)


def test_stage1_checkpoint_hook(monkeypatch, tmp_path):
    import imdd_mm.models.pretrainers as pre
    calls = []

    def fake_load(path, unet, captioner_mlp=None, use_ema=True):
        calls.append((path, type(unet).__name__))
        with torch.no_grad():
            unet.conv_in.bias.fill_(0.5)
        return dict(frozen_source=dict(kind='stage1_checkpoint', path=path,
                                       sha256='ab' * 32, ema=True))

    monkeypatch.setattr(pre, 'load_stage1_weights', fake_load, raising=False)
    bb = tiny_backbone(stage1_checkpoint=str(tmp_path / 's1.pth'))
    assert calls == [(str(tmp_path / 's1.pth'), 'UNet2DConditionModel')]
    assert torch.all(bb.unet.conv_in.bias == 0.5)
    assert bb.frozen_sources()['unet']['kind'] == 'stage1_checkpoint'


def test_sd15_full_size_builds_with_paper_sizes():
    """Full-size default backbone on the meta device: SD-1.5 U-Net of
    859.5M ± 0.5% parameters and the §4.5 channels/strides."""
    with torch.device('meta'):
        bb = IMDDDiffusionBackbone()
    n = count_params(bb.unet)
    assert abs(n - 859.5e6) / 859.5e6 < 0.005, n
    assert bb.unet.config.cross_attention_dim == 768
    assert tuple(bb.unet.config.block_out_channels) == (320, 640, 1280, 1280)
    assert bb.out_channels == {'s8': 320, 's16': 640, 's32': 1280,
                               's64': 1280}
    assert bb.out_strides == {'s8': 8, 's16': 16, 's32': 32, 's64': 64}
    assert bb.vae_factor == 8 and bb.scaling_factor == 0.18215
    assert bb.vae.decoder is None
    assert bb.state_dict() == {}
    assert SD15_UNET_CONFIG['attention_head_dim'] == 8


def test_deepcopy_for_ema(backbone):
    """mmengine's EMA deep-copies the model: the hidden frozen nets must be
    copied along and give the same features."""
    import copy
    clone = copy.deepcopy(backbone)
    assert clone.unet is not backbone.unet
    img = rand_img(1, 64, 64)
    torch.testing.assert_close(clone(img)['s8'], backbone(img)['s8'],
                               rtol=0, atol=0)


def test_checkpoint_with_unet_keys_loads_into_frozen_unet():
    """A checkpoint saved with ``frozen=False`` (U-Net keys inside) loads
    strictly into a frozen backbone, filling its hidden U-Net."""
    trained = tiny_backbone(frozen=False)
    with torch.no_grad():
        trained.unet.conv_in.bias.add_(1.0)
    sd = trained.state_dict()
    frozen = tiny_backbone()
    frozen.load_state_dict(sd, strict=True)
    assert torch.equal(frozen.unet.conv_in.bias, trained.unet.conv_in.bias)
    assert frozen.state_dict() == {}
    partial = {k: v for k, v in sd.items() if 'conv_in' not in k}
    with pytest.raises(RuntimeError, match='Missing key'):
        tiny_backbone().load_state_dict(partial, strict=True)


def test_vae_runs_in_fp32_under_autocast_as_in_stage1():
    """Stage 2's VAE sees the same fp32 encoder as Stage 1 (vae_fp32=True),
    even inside an autocast region (bf16 on CPU here)."""
    bb = tiny_backbone()
    img = rand_img(2, 64, 64)
    with torch.no_grad():
        ref, _ = bb.encode_latents(img)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            amp, _ = bb.encode_latents(img)
    assert amp.dtype == torch.float32
    torch.testing.assert_close(amp, ref, rtol=0, atol=0)
    lowp = tiny_backbone(vae_fp32=False)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        assert lowp.encode_latents(img)[0].dtype == torch.bfloat16


def test_fixed_noise_cache_is_bounded_lru():
    from imdd_mm.models.backbones.diffusion_backbone import NOISE_CACHE_SIZE
    bb = tiny_backbone()
    first = bb.fixed_noise((4, 8, 8), torch.device('cpu'), torch.float32)
    for k in range(3 * NOISE_CACHE_SIZE):
        bb.fixed_noise((4, 8, 9 + k), torch.device('cpu'), torch.float32)
        # the most recently used shape stays cached
        assert bb.fixed_noise((4, 8, 8), torch.device('cpu'),
                              torch.float32) is first
    assert len(bb._noise_cache) == NOISE_CACHE_SIZE
    again = bb.fixed_noise((4, 8, 10), torch.device('cpu'), torch.float32)
    gen = torch.Generator().manual_seed(bb.noise_seed)
    assert torch.equal(again, torch.randn((1, 4, 8, 10), generator=gen))
