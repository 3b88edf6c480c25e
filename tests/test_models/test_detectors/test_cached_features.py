# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""IMDDMask2Former's cached-features mode (tiny Stage-2 config): the same
predictions as recomputing, invalidation on frozen-weight changes, flips
shared by one entry, refusal where features are not a pure function of the
image."""
import copy

import pytest
import torch
from mmdet.utils import register_all_modules
from mmengine.config import Config

from .test_imdd_mask2former import TINY, build, make_samples, run


@pytest.fixture(scope='module')
def tiny_cfg():
    register_all_modules()
    return Config.fromfile(str(TINY))


def predict(model, samples, seed=0):
    model.eval()
    with torch.no_grad():
        return run(model, samples, 'predict', seed=seed)


def test_predictions_equal_with_and_without_cache(tiny_cfg, tmp_path):
    plain = build(tiny_cfg)
    cached = build(tiny_cfg, feature_cache=dict(cache_dir=str(tmp_path)))
    cached.load_state_dict(plain.state_dict())
    ref = predict(plain, make_samples(['defect', 'normal']))
    cold = predict(cached, make_samples(['defect', 'normal']))
    assert cached.feature_cache.misses == 2 and cached.feature_cache.hits == 0
    warm = predict(cached, make_samples(['defect', 'normal']))
    assert cached.feature_cache.hits == 2
    for r, c, w in zip(ref, cold, warm):
        for out in (c, w):
            torch.testing.assert_close(out.pred_score_map.data,
                                       r.pred_score_map.data,
                                       rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(out.pred_instances.scores,
                                       r.pred_instances.scores,
                                       rtol=1e-5, atol=1e-5)
    # the head's loss on cached features equals the recomputed one
    torch.manual_seed(1)
    plain.train()
    ref_loss = run(plain, make_samples(['defect', 'defect']), 'loss')
    torch.manual_seed(1)
    cached.train()
    loss = run(cached, make_samples(['defect', 'defect']), 'loss')
    torch.testing.assert_close(loss['loss_mask'], ref_loss['loss_mask'],
                               rtol=1e-5, atol=1e-6)
    sum(loss.values()).backward()
    grads = [p.grad for p in cached.panoptic_head.parameters()
             if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_changed_frozen_weights_invalidate(tiny_cfg, tmp_path):
    cfg = dict(cache_dir=str(tmp_path))
    model = build(tiny_cfg, feature_cache=cfg)
    samples = make_samples(['defect'])
    first = predict(model, samples)[0].pred_score_map.data
    ns = model._fc_ns
    with torch.no_grad():  # an in-place change of a frozen U-Net weight
        model.backbone.unet.conv_in.weight.mul_(1.5)
    changed = predict(model, make_samples(['defect']))[0]
    assert model._fc_ns != ns
    assert model.feature_cache.misses == 2  # recomputed, not a stale hit
    fresh = build(tiny_cfg)
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        fresh.backbone.unet.conv_in.weight.mul_(1.5)
    ref = predict(fresh, make_samples(['defect']))[0]
    torch.testing.assert_close(changed.pred_score_map.data,
                               ref.pred_score_map.data, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(changed.pred_score_map.data, first)
    # a new process with other frozen weights (another U-Net seed) gets its
    # own namespace in the same folder
    other_cfg = copy.deepcopy(tiny_cfg.model.backbone)
    other_cfg.unet['seed'] = 123
    other = build(tiny_cfg, feature_cache=cfg, backbone=other_cfg)
    predict(other, make_samples(['defect']))
    assert other._fc_ns not in (ns, model._fc_ns)


def test_flipped_sample_reads_the_unflipped_entry(tiny_cfg, tmp_path):
    model = build(tiny_cfg, feature_cache=dict(cache_dir=str(tmp_path)))
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    plain = make_samples(['defect'])
    feats = model.cached_backbone_features(x, plain)
    flipped = make_samples(['defect'])
    flipped[0].set_metainfo(dict(flip=True, flip_direction='horizontal'))
    again = model.cached_backbone_features(x.flip(-1), flipped)
    assert model.feature_cache.hits == 1 and model.feature_cache.misses == 1
    for k in feats:
        assert torch.equal(again[k], feats[k].flip(-1))
    # flip_features=False keys the flipped input separately
    exact = build(tiny_cfg, feature_cache=dict(
        cache_dir=str(tmp_path), flip_features=False))
    exact.load_state_dict(model.state_dict())
    exact.cached_backbone_features(x.flip(-1), flipped)
    assert exact.feature_cache.misses == 1


@pytest.mark.parametrize('override,match', [
    (dict(cond_mode='caption'), 'caption'),
    (dict(freeze_captioner=False), 'captioner'),
])
def test_refused_when_features_depend_on_more_than_the_image(
        tiny_cfg, tmp_path, override, match):
    with pytest.raises(ValueError, match=match):
        build(tiny_cfg, feature_cache=dict(cache_dir=str(tmp_path)),
              **override)


@pytest.mark.parametrize('change', ['parameter', 'submodule', 'dtype'])
def test_replaced_frozen_tensors_invalidate(tiny_cfg, tmp_path, change):
    """The per-iteration check reads cached tensor lists; replacing a frozen
    parameter or submodule (not an in-place change) must still re-key."""
    model = build(tiny_cfg, feature_cache=dict(cache_dir=str(tmp_path)))
    predict(model, make_samples(['defect']))
    ns = model._fc_ns
    state = model._frozen_state()
    assert model._frozen_state() == state  # nothing changed: same state
    predict(model, make_samples(['defect']))
    assert model._fc_ns == ns and model.feature_cache.hits == 1
    conv = model.backbone.unet.conv_in
    if change == 'parameter':
        conv.weight = torch.nn.Parameter(conv.weight.detach() * 1.5,
                                         requires_grad=False)
    elif change == 'submodule':
        new = copy.deepcopy(conv)
        with torch.no_grad():
            new.bias.add_(0.5)
        model.backbone.unet.conv_in = new
    else:  # a conversion moves every frozen tensor to a new storage
        model.backbone.unet.double()
        assert model._frozen_state() != state
        model.backbone.unet.float()
        conv.weight.requires_grad_(False)
        with torch.no_grad():
            conv.weight.mul_(1.5)
    predict(model, make_samples(['defect']))
    assert model._fc_ns != ns
    assert model.feature_cache.misses == 2
