# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import pytest
import torch
import torch.nn as nn

from imdd_mm.models.necks import ImplicitCaptioner
from imdd_mm.models.text_encoders import TINY_CLIP_CONFIG


@pytest.fixture(scope='module')
def captioner():
    return ImplicitCaptioner(model_name=TINY_CLIP_CONFIG)


def rand_img(b=2, h=48, w=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g) * 2 - 1


def test_output_shape_and_paper_mlp(captioner):
    out = captioner(rand_img())
    assert out.shape == (2, 1, 768)
    lin1, act, lin2 = captioner.mlp
    assert isinstance(act, nn.GELU)
    assert (lin1.in_features, lin1.out_features) == (512, 256)
    assert (lin2.in_features, lin2.out_features) == (256, 768)
    n = sum(p.numel() for p in captioner.mlp.parameters())
    assert 0.25e6 <= n <= 0.35e6, n


def test_mlp_gets_grad_tower_frozen(captioner):
    captioner.train()
    captioner.zero_grad()
    captioner(rand_img()).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in captioner.mlp.parameters())
    vis = list(captioner.visual.parameters())
    assert vis and all(not p.requires_grad and p.grad is None for p in vis)
    assert not any(m.training for m in captioner.visual.modules())
    assert captioner.mlp.training
    assert sorted(captioner.state_dict()) == [
        'mlp.0.bias', 'mlp.0.weight', 'mlp.2.bias', 'mlp.2.weight']
    assert {id(p) for p in captioner.parameters()} == {
        id(p) for p in captioner.mlp.parameters()}


def test_eq6_and_determinism(captioner):
    img = rand_img()
    out = captioner(img)
    with torch.no_grad():
        v = captioner.visual(captioner.preprocess(img))
        lin1, _, lin2 = captioner.mlp
        ref = lin2(nn.functional.gelu(lin1(v)))
    torch.testing.assert_close(out[:, 0], ref)
    torch.testing.assert_close(captioner(img), out, rtol=0, atol=0)


def test_preprocess_clip_normalisation(captioner):
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    img = torch.zeros(1, 3, 50, 70)  # mid grey in [-1, 1]
    x = captioner.preprocess(img)
    assert x.shape == (1, 3, 32, 32)  # tiny tower's input size
    ref = (0.5 - torch.tensor(OPENAI_DATASET_MEAN)) / torch.tensor(
        OPENAI_DATASET_STD)
    torch.testing.assert_close(x[0, :, 5, 5], ref)


def test_frozen_mlp_and_dims():
    cap = ImplicitCaptioner(model_name=TINY_CLIP_CONFIG, frozen_mlp=True,
                            out_dim=384, hidden_dim=64)
    assert cap(rand_img(1)).shape == (1, 1, 384)
    assert list(cap.parameters()) == [] and cap.state_dict() == {}
    assert all(not p.requires_grad for p in cap.mlp.parameters())
    with pytest.raises(ValueError, match='in_dim'):
        ImplicitCaptioner(model_name=TINY_CLIP_CONFIG, in_dim=256)


def test_autocast_bf16(captioner):
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = captioner(rand_img())
    assert out.shape == (2, 1, 768) and torch.isfinite(out.float()).all()


def test_pretrained_local_file(tmp_path):
    import open_clip
    torch.manual_seed(3)
    model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    path = tmp_path / 'tiny_clip.pt'
    torch.save(model.state_dict(), path)
    cap = ImplicitCaptioner(model_name=TINY_CLIP_CONFIG, pretrained=str(path))
    torch.testing.assert_close(cap.visual.conv1.weight,
                               model.visual.conv1.weight)


def test_registry_and_full_size():
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    for reg in (DET, SEG):
        cap = reg.build(dict(type='ImplicitCaptioner',
                             model_name=TINY_CLIP_CONFIG, out_dim=384))
        assert isinstance(cap, ImplicitCaptioner) and cap.out_dim == 384
    with torch.device('meta'):
        full = ImplicitCaptioner()  # ViT-B-16, 512 -> 256 -> 768
    assert full.image_size == (224, 224)
    n_tower = sum(p.numel() for p in full.visual.parameters())
    assert 85e6 < n_tower < 88e6, n_tower  # ViT-B/16 image tower
    assert sum(p.numel() for p in full.mlp.parameters()) == 328704


def test_frozen_random_mlp_is_the_same_in_every_process():
    """A frozen MLP is not in checkpoints, so a test run rebuilds it: its
    random init is seeded (not the global RNG, which mmengine seeds
    differently per run), recorded with its seed; a trainable MLP still
    follows the global RNG."""
    def frozen_mlp(global_seed, seed=0):
        torch.manual_seed(global_seed)
        cap = ImplicitCaptioner(model_name=TINY_CLIP_CONFIG,
                                frozen_mlp=True, seed=seed)
        return [p.clone() for p in cap.mlp.parameters()], cap

    first, cap = frozen_mlp(1)
    second, _ = frozen_mlp(2)
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    other, _ = frozen_mlp(1, seed=1)
    assert not torch.equal(first[0], other[0])
    src = cap.frozen_sources()['mlp']
    assert src['kind'] == 'random' and src['seed'] == 0
    torch.manual_seed(1)
    a = ImplicitCaptioner(model_name=TINY_CLIP_CONFIG).mlp[0].weight
    torch.manual_seed(2)
    b = ImplicitCaptioner(model_name=TINY_CLIP_CONFIG).mlp[0].weight
    assert not torch.equal(a, b)
