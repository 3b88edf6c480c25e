# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from imdd_mm.models.text_encoders import (INDUSTRIAL_TEMPLATES,
                                          TINY_CLIP_CONFIG, BaseTextEncoder,
                                          CLIPTextEncoder, MiniLMTextEncoder)


@pytest.fixture(scope='module')
def minilm():
    return MiniLMTextEncoder()


@pytest.fixture(scope='module')
def tiny_clip():
    return CLIPTextEncoder(model_name=TINY_CLIP_CONFIG)


def test_minilm_dim_and_semantics(minilm):
    assert isinstance(minilm, BaseTextEncoder)
    assert minilm.embed_dim == 384
    emb = minilm.encode(['scratch', 'scratches', 'banana'])
    assert emb.shape == (3, 384) and emb.dtype == torch.float32
    assert not emb.requires_grad
    cos = F.cosine_similarity
    assert cos(emb[0], emb[1], dim=0) > cos(emb[0], emb[2], dim=0) + 0.2


def test_minilm_frozen_not_in_state_dict(minilm):
    assert minilm.state_dict() == {}
    assert list(minilm.parameters()) == []
    params = list(minilm.tower.parameters())
    assert params and all(not p.requires_grad for p in params)
    minilm.train()
    assert not minilm.tower.training


def test_cache_hit_does_not_rerun_tower(minilm):
    minilm.clear_cache()
    names = ['crack', 'hole', 'oil stain']
    with mock.patch.object(minilm, '_encode_batch',
                           wraps=minilm._encode_batch) as spy:
        a = minilm.encode_names(names)
        assert spy.call_count == 1
        n_prompts = spy.call_args[0][0]
        assert len(n_prompts) == len(names) * len(INDUSTRIAL_TEMPLATES)
        b = minilm.encode_names(names)
        assert spy.call_count == 1  # names cache
        minilm.encode(['a crack', 'a photo of a crack defect.'])
        assert spy.call_count == 2  # only 'a crack' is new
        assert spy.call_args[0][0] == ['a crack']
        minilm.encode(['a crack'])
        assert spy.call_count == 2  # per-string cache
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(3))


def test_encode_names_is_template_ensemble(minilm):
    tpls = ('a photo of a {}.', 'a {} defect.')
    got = minilm.encode_names(['dent'], templates=tpls)
    e = F.normalize(minilm.encode(['a photo of a dent.', 'a dent defect.']),
                    dim=-1)
    torch.testing.assert_close(got[0], F.normalize(e.mean(0), dim=0))
    # underscores in class names read as spaces
    torch.testing.assert_close(
        minilm.encode_names(['oil_stain'], templates=tpls),
        minilm.encode_names(['oil stain'], templates=tpls))


def test_bad_inputs(minilm):
    with pytest.raises(TypeError):
        minilm.encode('scratch')
    assert minilm.encode([]).shape == (0, 384)
    with pytest.raises(ValueError, match='placeholder'):
        BaseTextEncoder(templates=['no placeholder'])
    with pytest.raises(FileNotFoundError):
        MiniLMTextEncoder(model_path='/nonexistent/minilm')


def test_tiny_clip_text_encoder(tiny_clip):
    assert tiny_clip.embed_dim == 512
    emb = tiny_clip.encode(['metal plate with scratches', 'a crack'])
    assert emb.shape == (2, 512) and emb.dtype == torch.float32
    assert not torch.allclose(emb[0], emb[1])
    assert tiny_clip.state_dict() == {}
    assert list(tiny_clip.parameters()) == []
    names = tiny_clip.encode_names(['scratch', 'crack', 'dent'])
    assert names.shape == (3, 512)
    torch.testing.assert_close(names.norm(dim=-1), torch.ones(3))
    # seeded random init: a second instance gives the same embeddings
    other = CLIPTextEncoder(model_name=TINY_CLIP_CONFIG)
    torch.testing.assert_close(other.encode(['a crack']), emb[1:])


def test_clip_pretrained_local_file(tmp_path, tiny_clip):
    import open_clip
    torch.manual_seed(5)
    model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    path = tmp_path / 'tiny_clip.pt'
    torch.save(model.state_dict(), path)
    enc = CLIPTextEncoder(model_name=TINY_CLIP_CONFIG, pretrained=str(path))
    tok = enc.tokenizer(['a crack'])
    with torch.no_grad():
        ref = model.encode_text(tok)
    torch.testing.assert_close(enc.encode(['a crack']), ref)
    assert not torch.allclose(enc.encode(['a crack']),
                              tiny_clip.encode(['a crack']))


def test_clip_vit_l14_default_is_768d():
    with torch.device('meta'):  # ViT-L-14 text tower, shapes only
        enc = CLIPTextEncoder()
    assert enc.embed_dim == 768
    n = sum(p.numel() for p in enc.tower.parameters())
    assert 120e6 < n < 126e6, n  # CLIP ViT-L/14 text transformer
    assert enc.tokenizer(['scratch']).shape == (1, 77)


def test_registry_and_device_following(tiny_clip):
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    # mmseg has its own CLIPTextEncoder: ours is IMDDCLIPTextEncoder there
    # (an alias that works in mmdet too)
    for reg, name in ((DET, 'CLIPTextEncoder'), (DET, 'IMDDCLIPTextEncoder'),
                      (SEG, 'IMDDCLIPTextEncoder')):
        enc = reg.build(dict(type=name, model_name=TINY_CLIP_CONFIG))
        assert isinstance(enc, CLIPTextEncoder)
    assert SEG.get('CLIPTextEncoder') is not CLIPTextEncoder  # mmseg's own
    for reg in (DET, SEG):
        assert reg.get('MiniLMTextEncoder') is MiniLMTextEncoder
        assert reg.get('IMDDMiniLMTextEncoder') is MiniLMTextEncoder
    enc.double()  # the hidden tower follows dtype/device moves
    assert next(enc.tower.parameters()).dtype == torch.float64
    assert enc.encode(['scratch']).dtype == torch.float32
    assert enc.device == torch.device('cpu')
