# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Anomaly baselines: build, fit/train briefly on real Magnetic Tile images,
score defective images, and feed the maps to the shared metrics."""
import numpy as np
import pytest
import torch
from mmengine.optim import OptimWrapper

from imdd_mm.models.anomaly import (CLIPPromptAD, DiffusionReconstructionAD,
                                    MutualScoring, PatchCore, SimpleNet,
                                    greedy_coreset, mutual_scores)
from .conftest import INPUT_SIZE, make_batch

TINY_RESNET = dict(arch='resnet18', pretrain_embed_dim=64, embed_dim=64)
TINY_VIT = dict(
    source='torchvision',
    layers=(0, 1),
    model_cfg=dict(image_size=64, patch_size=8, num_layers=2, num_heads=2,
                   hidden_dim=32, mlp_dim=64))
TINY_CLIP = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=64, layers=2, width=32, head_width=16,
                    patch_size=8, mlp_ratio=2.0),
    text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2,
                  layers=2))
TINY_UNET = dict(
    sample_size=64,
    in_channels=3,
    out_channels=3,
    layers_per_block=1,
    block_out_channels=(8, 16),
    norm_num_groups=4,
    add_attention=False,
    down_block_types=('DownBlock2D', 'DownBlock2D'),
    up_block_types=('UpBlock2D', 'UpBlock2D'))


def shared_metrics(samples, masks, labels):
    """P-AUROC, AUPRO and I-AUROC through imdd_mm's functional metrics
    (images differ in size: pixels are pooled / streamed per image)."""
    from imdd_mm.evaluation.functional import ranking
    maps = [s.pred_score_map.data[0].numpy() for s in samples]
    flat_s = np.concatenate([m.ravel() for m in maps])[None, None]
    flat_m = np.concatenate([m.ravel() for m in masks])[None, None]
    p_auroc = ranking.pixel_auroc(flat_s, flat_m)
    curves = ranking.StreamingPixelCurves(num_bins=1000)
    for m, gt in zip(maps, masks):
        curves.update(m[None], gt[None])
    aupro = curves.aupro(0.3)
    i_auroc = ranking.image_auroc([s.pred_image_score for s in samples],
                                  labels)
    return p_auroc, aupro, i_auroc


def check_predictions(model, mt_data):
    """Predict defective + normal test images, check the sample contract
    and the shared metrics; returns the metrics."""
    items = mt_data['defects'] + mt_data['test_normals']
    masks = mt_data['masks'] + mt_data['test_normal_masks']
    labels = [1] * len(mt_data['defects']) + [0] * len(
        mt_data['test_normals'])
    model.eval()
    with torch.no_grad():
        samples = model.test_step(make_batch(items))
    assert len(samples) == len(items)
    for sample, (_, _, ori) in zip(samples, items):
        data = sample.pred_score_map.data
        assert data.shape == (1, *ori)  # original image size
        assert data.dtype == torch.float32
        assert torch.isfinite(data).all()
        assert data.min() >= 0 and data.max() <= 1
        assert 0.0 <= sample.pred_image_score <= 1.0
        assert sample.pred_image_label in (0, -1)
    metrics = shared_metrics(samples, masks, labels)
    for value in metrics:
        assert np.isfinite(value) and 0.0 <= value <= 1.0
    return metrics


def fit_memory(model, mt_data, batch_size=3):
    model.train()
    normals = mt_data['normals']
    for i in range(0, len(normals), batch_size):
        model.train_step(make_batch(normals[i:i + batch_size]), None)
    model.finalize_fit()


# --------------------------------------------------------------- PatchCore
def test_greedy_coreset_picks_farthest_points():
    pts = torch.tensor([[0.0], [1.0], [2.0], [10.0], [10.1]])
    idx = greedy_coreset(pts, 3, projection_dim=None, start_index=0)
    # 10.1 is farthest from {0}; then 2 (dist 2) beats 10 (0.1) and 1 (1)
    assert idx.tolist() == [0, 4, 2]


def test_greedy_coreset_keeps_fraction_with_projection():
    feats = torch.randn(200, 256, generator=torch.Generator().manual_seed(0))
    idx = greedy_coreset(feats, 20, projection_dim=16, seed=1)
    assert idx.shape == (20, ) and len(set(idx.tolist())) == 20
    # deterministic for a seed
    assert torch.equal(idx, greedy_coreset(feats, 20, 16, seed=1))


@pytest.mark.real_data
def test_patchcore_wrn50_fit_and_score(mt_data):
    model = PatchCore(backbone=dict(arch='wide_resnet50_2'),
                      coreset_ratio=0.1)
    fit_memory(model, mt_data)
    patches = len(mt_data['normals']) * (INPUT_SIZE // 8)**2
    assert model.memory_bank.shape == (round(patches * 0.1), 1024)
    assert float(model.score_scale) > 0
    check_predictions(model, mt_data)
    # the frozen backbone is not in checkpoints; the bank and the
    # calibration are (reloading: test_anomaly_configs)
    state = model.state_dict()
    assert not any(k.startswith('backbone.') for k in state)
    assert {'memory_bank', 'score_center', 'score_scale'} <= set(state)


def test_patchcore_requires_fit():
    model = PatchCore(backbone=TINY_RESNET)
    with pytest.raises(RuntimeError, match='empty memory bank'):
        model.anomaly_maps(torch.zeros(1, 3, 32, 32))


# --------------------------------------------------------------- SimpleNet
@pytest.mark.real_data
def test_simplenet_trains_and_scores(mt_data):
    torch.manual_seed(0)
    model = SimpleNet(backbone=TINY_RESNET, hidden_dim=32, seed=0)
    params = [p for p in model.parameters() if p.requires_grad]
    assert params and all(not p.requires_grad
                          for p in model.backbone.parameters())
    optim = OptimWrapper(torch.optim.Adam(params, lr=1e-3))
    model.train()
    batch = make_batch(mt_data['normals'][:3])
    losses = []
    for _ in range(5):
        log = model.train_step(batch, optim)
        losses.append(float(log['loss']))
    assert losses[-1] < losses[0]
    check_predictions(model, mt_data)


# ------------------------------------------------------------ mutual score
def test_mutual_scores_permutation_equivariant():
    feats = torch.randn(5, 12, 8, generator=torch.Generator().manual_seed(0))
    perm = torch.tensor([3, 0, 4, 1, 2])
    out = mutual_scores(feats, 0.5)
    assert torch.allclose(mutual_scores(feats[perm], 0.5), out[perm])
    # an outlier patch scores highest
    feats[2, 5] += 10
    assert mutual_scores(feats, 0.5).argmax() == 2 * 12 + 5


@pytest.mark.real_data
def test_mutual_scoring_zero_shot(mt_data):
    model = MutualScoring(backbone=TINY_VIT, aggregation_degrees=(1, 3))
    check_predictions(model, mt_data)
    items = mt_data['defects'] + mt_data['test_normals']
    perm = [4, 2, 0, 5, 1, 3]
    with torch.no_grad():
        base = model.test_step(make_batch(items))
        permuted = model.test_step(make_batch([items[i] for i in perm]))
    for j, i in enumerate(perm):
        assert torch.allclose(permuted[j].pred_score_map.data,
                              base[i].pred_score_map.data, atol=1e-5)
    # a last batch of one image is scored against the previous batch
    single = model.test_step(make_batch(items[:1]))[0]
    assert single.pred_score_map.data.shape == (1, *items[0][2])
    assert 0 <= single.pred_image_score <= 1
    fresh = MutualScoring(backbone=TINY_VIT, aggregation_degrees=(1, 3))
    with pytest.raises(ValueError, match='at least 2 images'):
        fresh.test_step(make_batch(items[:1]))


# ---------------------------------------------------------------- CLIP
@pytest.mark.real_data
def test_clip_prompt_zero_and_few_shot(mt_data):
    torch.manual_seed(0)
    zero = CLIPPromptAD(model_cfg=TINY_CLIP, object_name='magnetic tile',
                        memory_layers=(0, 1))
    check_predictions(zero, mt_data)
    few = CLIPPromptAD(model_cfg=TINY_CLIP, object_name='magnetic tile',
                       few_shot=True, memory_layers=(0, 1))
    few.clip.load_state_dict(zero.clip.state_dict())
    fit_memory(few, mt_data)
    grid = (INPUT_SIZE // 8)**2
    assert few.memory.shape == (2, len(mt_data['normals']) * grid, 32)
    check_predictions(few, mt_data)


@pytest.mark.real_data
def test_clip_learnable_prompts_train(mt_data):
    torch.manual_seed(0)
    model = CLIPPromptAD(model_cfg=TINY_CLIP, object_name='magnetic tile',
                         learnable_prompts=True, n_ctx=4,
                         memory_layers=(1, ))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ['ctx']
    optim = OptimWrapper(torch.optim.AdamW([model.ctx], lr=1e-2))
    model.train()
    batch = make_batch(mt_data['normals'][:3])
    before = model.ctx.detach().clone()
    losses = [float(model.train_step(batch, optim)['loss'])
              for _ in range(3)]
    assert not torch.equal(before, model.ctx.detach())
    assert losses[-1] < losses[0]
    check_predictions(model, mt_data)


# ----------------------------------------------------------- diffusion
@pytest.mark.real_data
def test_diffusion_reconstruction_trains_and_scores(mt_data):
    torch.manual_seed(0)
    model = DiffusionReconstructionAD(
        unet=TINY_UNET,
        feature_extractor=dict(arch='resnet18', layers=('layer1', 'layer2')),
        test_timestep=100,
        num_inference_steps=1)
    optim = OptimWrapper(torch.optim.Adam(model.unet.parameters(), lr=1e-3))
    model.train()
    batch = make_batch(mt_data['normals'][:3])
    log = model.train_step(batch, optim)
    assert np.isfinite(float(log['loss']))
    assert model.timesteps() == [100]
    model.num_inference_steps = 4
    assert model.timesteps() == [100, 75, 50, 25]
    model.num_inference_steps = 1
    check_predictions(model, mt_data)
    state = model.state_dict()
    assert any(k.startswith('unet.') for k in state)
    assert not any(k.startswith('feature_extractor.') for k in state)
