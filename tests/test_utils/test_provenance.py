# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Provenance of frozen networks (imdd_mm.utils.provenance): every frozen
network knows where its weights came from, random ones need the one
switch, pretrained ones are read from local folders / caches only, and
checkpoints carry and check the records."""
import copy
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import imdd_mm  # noqa: F401
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from imdd_mm.models.backbones import (TINY_UNET_CONFIG, TINY_VAE_CONFIG,
                                      build_vae)
from imdd_mm.models.backbones.frozen import FrozenModulesMixin
from imdd_mm.models.text_encoders import TINY_CLIP_CONFIG
from imdd_mm.models.text_encoders.openclip_utils import openclip_model_name
from imdd_mm.utils.provenance import (FROZEN_SOURCES_KEY, FrozenSourceMismatch,
                                      FrozenWeightsUnavailable,
                                      any_random_frozen, check_frozen_sources,
                                      file_sha256, random_frozen_fallback)

REPO = Path(__file__).resolve().parents[2]
TINY2 = REPO / 'configs' / 'imdd' / 'tiny' / 'stage2_tiny.py'
TINY1 = REPO / 'configs' / 'imdd' / 'tiny' / 'stage1_tiny.py'
KINDS = {'random', 'diffusers_folder', 'hub', 'open_clip', 'file',
         'stage1_checkpoint'}


@pytest.fixture(scope='module')
def tiny2():
    imdd_mm.register_all_modules()
    return Config.fromfile(str(TINY2))


def _build(cfg, **overrides):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.vocabulary = ['scratch', 'crack']
    model_cfg.update(overrides)
    return MODELS.build(model_cfg)


def test_file_sha256(tmp_path):
    f = tmp_path / 'w.bin'
    f.write_bytes(b'imdd' * 1000)
    assert file_sha256(f) == hashlib.sha256(b'imdd' * 1000).hexdigest()
    with pytest.raises(FileNotFoundError, match='no such file'):
        file_sha256(tmp_path / 'missing.bin')


def test_every_frozen_network_has_a_json_record(tiny2):
    model = _build(tiny2)
    sources = model.frozen_sources()
    assert set(sources) == {
        'backbone.unet', 'backbone.vae', 'captioner.visual', 'captioner.mlp',
        'panoptic_head.text_encoder.tower'
    }
    json.dumps(sources)  # serialisable
    assert all(s['kind'] in KINDS for s in sources.values())
    assert sources['backbone.vae'] == dict(
        kind='random', seed=0, init='default',
        config_sha256=sources['backbone.vae']['config_sha256'])
    minilm = sources['panoptic_head.text_encoder.tower']
    assert minilm['kind'] == 'file' and len(minilm['sha256']) == 64
    assert any_random_frozen(sources)
    assert not any_random_frozen({'x': minilm})
    # building blocks answer too
    assert set(model.backbone.frozen_sources()) == {'unet', 'vae'}
    assert set(model.captioner.frozen_sources()) == {'visual', 'mlp'}


def test_random_frozen_parts_need_the_switch(tiny2):
    with pytest.raises(FrozenWeightsUnavailable) as err:
        _build(tiny2, allow_random_frozen=False)
    msg = str(err.value)
    assert 'model.allow_random_frozen=True' in msg
    assert 'backbone.vae' in msg and 'captioner.visual' in msg
    cfg1 = Config.fromfile(str(TINY1))
    cfg1.model.allow_random_frozen = False
    with pytest.raises(FrozenWeightsUnavailable, match='vae'):
        MODELS.build(cfg1.model)


def test_diffusers_folder_and_hub_cache_sources(tmp_path, monkeypatch):
    vae = build_vae(dict(config=TINY_VAE_CONFIG, seed=3))
    folder = tmp_path / 'sd' / 'vae'
    vae.save_pretrained(str(folder))
    weights = folder / 'diffusion_pytorch_model.safetensors'
    net, src = build_vae(dict(pretrained=str(tmp_path / 'sd')),
                         with_source=True)
    assert src == dict(kind='diffusers_folder',
                       path=str(tmp_path / 'sd'), subfolder='vae',
                       sha256=file_sha256(weights))
    assert torch.equal(next(net.parameters()), next(vae.parameters()))
    # a hub id is read from the Hugging Face cache only
    import huggingface_hub.constants as hf_constants
    cache = tmp_path / 'hub'
    snap = cache / 'models--org--sd' / 'snapshots' / ('0' * 40)
    (cache / 'models--org--sd' / 'refs').mkdir(parents=True)
    (cache / 'models--org--sd' / 'refs' / 'main').write_text('0' * 40)
    vae.save_pretrained(str(snap / 'vae'))
    monkeypatch.setattr(hf_constants, 'HF_HUB_CACHE', str(cache))
    net, src = build_vae(dict(pretrained='org/sd', pretrained_kwargs=dict(
        cache_dir=str(cache))), with_source=True)
    assert src['kind'] == 'hub' and src['id'] == 'org/sd'
    assert src['subfolder'] == 'vae'
    assert src['sha256'] == file_sha256(weights)
    with pytest.raises(FrozenWeightsUnavailable) as err:
        build_vae(dict(pretrained='org/not-cached', pretrained_kwargs=dict(
            cache_dir=str(cache))))
    assert "'org/not-cached'" in str(err.value)
    assert 'model.allow_random_frozen=True' in str(err.value)
    with random_frozen_fallback(True):
        net, src = build_vae(dict(pretrained='org/not-cached',
                                  config=TINY_VAE_CONFIG,
                                  pretrained_kwargs=dict(
                                      cache_dir=str(cache))),
                             with_source=True)
    assert src['kind'] == 'random'
    assert src['fallback_for']['pretrained'] == 'org/not-cached'


def test_open_clip_file_tag_and_quickgelu(tmp_path):
    import open_clip
    from open_clip.transformer import QuickGELU

    from imdd_mm.models.necks import ImplicitCaptioner
    from imdd_mm.models.text_encoders import CLIPTextEncoder
    assert openclip_model_name('ViT-B-16', 'openai') == 'ViT-B-16-quickgelu'
    assert openclip_model_name('ViT-L-14', '/w/openai/ViT-L-14.pt') == \
        'ViT-L-14-quickgelu'
    assert openclip_model_name('ViT-B-16', 'laion2b_s34b_b88k') == 'ViT-B-16'
    assert openclip_model_name('ViT-B-16-quickgelu', 'openai') == \
        'ViT-B-16-quickgelu'
    # an OpenAI checkpoint given as a local file builds QuickGELU
    clip = open_clip.CLIP(**TINY_CLIP_CONFIG, quick_gelu=True)
    path = tmp_path / 'openai' / 'tiny_clip.pt'
    path.parent.mkdir()
    torch.save(clip.state_dict(), path)
    cap = ImplicitCaptioner(model_name=TINY_CLIP_CONFIG, pretrained=str(path))
    assert any(isinstance(m, QuickGELU) for m in cap.visual.modules())
    assert cap.frozen_sources()['visual'] == dict(
        kind='file', path=str(path), sha256=file_sha256(path),
        config_sha256=cap.frozen_sources()['visual']['config_sha256'])
    torch.testing.assert_close(cap.visual.conv1.weight,
                               clip.visual.conv1.weight)
    enc = CLIPTextEncoder(model_name=TINY_CLIP_CONFIG, pretrained=str(path))
    assert any(isinstance(m, QuickGELU) for m in enc.tower.modules())
    assert enc.frozen_sources()['tower']['kind'] == 'file'
    # a tag not in the local caches names what it looked for
    from imdd_mm.models.text_encoders.openclip_utils import _cached_tag_file
    if _cached_tag_file('ViT-B-16', 'laion2b_s34b_b88k')[0] is None:
        with pytest.raises(FrozenWeightsUnavailable) as err:
            ImplicitCaptioner(pretrained='laion2b_s34b_b88k')
        assert "'laion2b_s34b_b88k' of 'ViT-B-16'" in str(err.value)
        assert 'model.allow_random_frozen=True' in str(err.value)


def test_unknown_open_clip_tag_is_a_clear_error():
    from imdd_mm.models.necks import ImplicitCaptioner
    with pytest.raises(ValueError, match='not-a-tag'):
        ImplicitCaptioner(model_name='ViT-B-16', pretrained='not-a-tag')


def test_one_mixin_holds_every_frozen_network(tiny2):
    """Item 7: the head's text encoder, the detector's caption encoder and
    the seg null-prompt encoder are FrozenModulesMixin frozen modules."""
    model = _build(tiny2, cond_mode='caption', caption_text_encoder=dict(
        type='MiniLMTextEncoder'))
    head = model.panoptic_head
    assert isinstance(head, FrozenModulesMixin)
    assert isinstance(model, FrozenModulesMixin)
    assert dict(head.named_frozen_modules())['text_encoder'] is \
        head.text_encoder
    assert dict(model.named_frozen_modules())['caption_text_encoder'] is \
        model.caption_text_encoder
    assert 'caption_text_encoder.tower' in model.frozen_sources()
    assert not [k for k in model.state_dict()
                if 'text_encoder' in k or 'tower' in k]
    model.to(torch.float64)
    assert next(model.caption_text_encoder.tower.parameters()).dtype == \
        torch.float64
    import ast
    for rel in ('imdd_mm/models/dense_heads/vocabulary.py',
                'imdd_mm/models/detectors/imdd_mask2former.py',
                'imdd_mm/models/seg/imdd_encoder_decoder.py'):
        tree = ast.parse((REPO / rel).read_text())
        hidden = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                  and n.attr == '__dict__']
        assert not hidden, f'{rel} hides modules by hand'


def _stage1_ckpt(path, cfg1, **overrides):
    from imdd_mm.engine.hooks import FrozenSourcesHook
    cfg1 = copy.deepcopy(cfg1)
    cfg1.model.update(overrides)
    model = MODELS.build(cfg1.model)
    ckpt = dict(state_dict=model.state_dict(), meta=dict())
    FrozenSourcesHook().before_save_checkpoint(SimpleNamespace(model=model),
                                               ckpt)
    torch.save(ckpt, path)
    return ckpt


def test_stage2_checks_stage1_frozen_networks(tiny2, tmp_path):
    cfg1 = Config.fromfile(str(TINY1))
    good = tmp_path / 's1.pth'
    ckpt = _stage1_ckpt(good, cfg1)
    assert set(ckpt['meta'][FROZEN_SOURCES_KEY]) == {
        'vae', 'text_encoder.tower', 'captioner.visual'}
    model = _build(tiny2, stage1_checkpoint=str(good))
    unet = model.frozen_sources()['backbone.unet']
    assert unet == dict(kind='stage1_checkpoint', path=str(good),
                        sha256=file_sha256(good), ema=False)
    # Stage 1 ran with another VAE (seed): the U-Net never saw these latents
    bad = tmp_path / 's1_other_vae.pth'
    _stage1_ckpt(bad, cfg1, vae=dict(config=TINY_VAE_CONFIG, seed=5))
    with pytest.raises(FrozenSourceMismatch) as err:
        _build(tiny2, stage1_checkpoint=str(bad))
    assert 'vae' in str(err.value)
    assert 'model.override_frozen_sources=True' in str(err.value)
    model = _build(tiny2, stage1_checkpoint=str(bad),
                   override_frozen_sources=True)
    assert model.frozen_sources()['backbone.unet']['sha256'] == \
        file_sha256(bad)


def test_hook_writes_meta_and_refuses_other_sources(tiny2):
    from imdd_mm.engine.hooks import FrozenSourcesHook
    hook = FrozenSourcesHook()
    model = _build(tiny2)
    runner = SimpleNamespace(model=model)
    ckpt = dict(meta=dict(), state_dict=model.state_dict())
    hook.before_save_checkpoint(runner, ckpt)
    assert ckpt['meta'][FROZEN_SOURCES_KEY] == model.frozen_sources()
    assert ckpt['meta']['imdd_random_frozen'] is True
    hook.after_load_checkpoint(runner, ckpt)  # same sources: fine
    other = _build(tiny2, backbone=dict(vae=dict(config=TINY_VAE_CONFIG,
                                                 seed=7)))
    with pytest.raises(FrozenSourceMismatch, match='backbone.vae'):
        hook.after_load_checkpoint(SimpleNamespace(model=other), ckpt)
    diffs = check_frozen_sources(other.frozen_sources(),
                                 ckpt['meta'][FROZEN_SOURCES_KEY],
                                 override=True)
    assert len(diffs) == 1


def test_unet_config_identity():
    """Same config and seed -> same record; another seed -> another."""
    from imdd_mm.models.backbones import build_unet
    _, a = build_unet(dict(config=TINY_UNET_CONFIG), with_source=True)
    _, b = build_unet(dict(config=dict(TINY_UNET_CONFIG)), with_source=True)
    _, c = build_unet(dict(config=TINY_UNET_CONFIG, seed=1),
                      with_source=True)
    assert a == b and a != c


def test_generation_checkpoint_load_checks_frozen_sources(tmp_path):
    """load_pretrainer_checkpoint (tools/generate.py) refuses a Stage-1
    checkpoint recorded with another VAE than the built pretrainer's."""
    from imdd_mm.models.pretrainers import load_pretrainer_checkpoint
    cfg1 = Config.fromfile(str(TINY1))
    path = tmp_path / 's1.pth'
    _stage1_ckpt(path, cfg1)
    same = MODELS.build(copy.deepcopy(cfg1.model))
    load_pretrainer_checkpoint(same, str(path))
    cfg1.model.vae = dict(config=TINY_VAE_CONFIG, seed=9)
    other = MODELS.build(cfg1.model)
    with pytest.raises(FrozenSourceMismatch, match='vae'):
        load_pretrainer_checkpoint(other, str(path))
