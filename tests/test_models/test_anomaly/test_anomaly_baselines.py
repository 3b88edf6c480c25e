# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Anomaly baselines: build, fit/train briefly on real Magnetic Tile images,
score defective images, and feed the maps to the shared metrics."""
import numpy as np
import pytest
import torch
from mmengine.optim import OptimWrapper

from imdd_mm.models.anomaly import (CLIPPromptAD, DiffusionReconstructionAD,
                                    DiversityMeasurableAD,
                                    FrequencyRestorationAD, MutualScoring,
                                    PatchCore, SimpleNet, greedy_coreset,
                                    mutual_scores, object_prompt_name,
                                    rescore_images, subsample_patches)
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


def reference_greedy(x: torch.Tensor, k: int, start: int) -> list:
    """Farthest-point selection by brute force (Euclidean, no tricks)."""
    chosen = [start]
    for _ in range(k - 1):
        d = torch.stack([torch.linalg.vector_norm(x - x[c], dim=1)
                         for c in chosen]).min(dim=0).values
        chosen.append(int(torch.argmax(d)))
    return chosen


def test_greedy_coreset_matches_brute_force():
    feats = torch.randn(300, 16, generator=torch.Generator().manual_seed(3))
    got = greedy_coreset(feats, 40, projection_dim=None, start_index=5)
    assert got.tolist() == reference_greedy(feats.double(), 40, 5)


def test_greedy_coreset_logs_progress_with_eta(monkeypatch):
    from imdd_mm.models.anomaly import memory_bank
    lines = []
    monkeypatch.setattr(memory_bank, 'print_log',
                        lambda msg, logger=None: lines.append(msg))
    feats = torch.randn(2000, 8, generator=torch.Generator().manual_seed(0))
    silent = greedy_coreset(feats, 600, projection_dim=None)
    assert not lines
    got = greedy_coreset(feats, 600, projection_dim=None, progress=True)
    assert torch.equal(got, silent)
    assert lines[0] == 'greedy coreset: 0/600 started'
    assert lines[-1].startswith('greedy coreset: 600/600 (100 %)')
    assert lines[-1].endswith('ETA 0 s')


def test_subsample_patches_is_seeded_and_ordered():
    feats = torch.arange(100.0)[:, None]
    sub = subsample_patches(feats, 10, seed=1)
    assert sub.shape == (10, 1)
    assert torch.equal(sub, subsample_patches(feats, 10, seed=1))
    assert bool((sub[1:, 0] > sub[:-1, 0]).all())  # original order
    assert subsample_patches(feats, None) is feats
    assert subsample_patches(feats, 500) is feats


def test_patchcore_cap_limits_the_bank():
    torch.manual_seed(0)
    model = PatchCore(backbone=TINY_RESNET, coreset_ratio=0.5,
                      max_fit_patches=40, fit_progress=False)
    model.train()
    x = torch.randint(0, 255, (3, 3, 32, 32), dtype=torch.uint8)
    model.train_step(dict(inputs=list(x), data_samples=None), None)
    model.finalize_fit()
    assert model.memory_bank.shape[0] == 20  # 0.5 x cap, not 0.5 x 48
    with pytest.raises(ValueError, match='max_fit_patches'):
        PatchCore(backbone=TINY_RESNET, max_fit_patches=0)


def test_predict_blurs_raw_scores_before_normalising():
    """PatchCore/SimpleNet order: Gaussian on the raw distances, then the
    (non-linear) normalisation."""
    from imdd_mm.models.anomaly import gaussian_blur
    torch.manual_seed(0)
    model = PatchCore(backbone=TINY_RESNET, coreset_ratio=0.5,
                      fit_progress=False)
    model.train()
    x = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    model.train_step(dict(inputs=list(x), data_samples=None), None)
    model.eval()
    inputs = model.data_preprocessor(dict(inputs=list(x)), False)['inputs']
    raw, _ = model.anomaly_maps(inputs)
    from mmdet.structures import DetDataSample
    samples = [DetDataSample(metainfo=dict(img_shape=(32, 32),
                                           ori_shape=(32, 32)))
               for _ in range(2)]
    out = model.predict(inputs, samples)
    expected = model.normalize_scores(gaussian_blur(raw, 4.0))
    assert torch.allclose(out[0].pred_score_map.data[0], expected[0],
                          atol=1e-6)
    other = gaussian_blur(model.normalize_scores(raw), 4.0)
    assert not torch.allclose(expected, other, atol=1e-4)


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


def test_rescore_images_is_similarity_weighted_mean():
    scores = torch.tensor([0.0, 1.0, 0.2, 0.9])
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.1, 1.0]])
    out = rescore_images(scores, feats, windows=(2, ))
    f = torch.nn.functional.normalize(feats, dim=1)
    sim = (f @ f.t()).clamp(min=0)
    # image 0: itself (1.0) and image 2 (cos ~0.995)
    w = torch.tensor([1.0, float(sim[0, 2])])
    assert out[0] == pytest.approx(float((w * scores[[0, 2]]).sum() /
                                         w.sum()), abs=1e-6)
    assert torch.equal(rescore_images(scores, feats, ()), scores)
    # convex combination: within the input range
    assert out.min() >= scores.min() and out.max() <= scores.max()


@pytest.mark.real_data
def test_mutual_scoring_whole_set_invariant_to_batches(mt_data):
    """MuSc scores the whole test set at once: batch size, order and
    splitting into batches do not change any score (bitwise)."""
    model = MutualScoring(backbone=TINY_VIT, aggregation_degrees=(1, 3))
    items = mt_data['defects'] + mt_data['test_normals']
    with pytest.raises(RuntimeError, match='whole test set'):
        model.test_step(make_batch(items))
    model.score_set([make_batch(items)])
    check_predictions(model, mt_data)
    base = {s.img_path: s for s in model.test_step(make_batch(items))}
    perm = [4, 2, 0, 5, 1, 3]
    shuffled = [items[i] for i in perm]
    for batch_size in (1, 2, 4):
        other = MutualScoring(backbone=TINY_VIT, aggregation_degrees=(1, 3))
        other.backbone.load_state_dict(model.backbone.state_dict())
        batches = [make_batch(shuffled[i:i + batch_size])
                   for i in range(0, len(shuffled), batch_size)]
        other.score_set(batches)
        for batch in batches[::-1]:
            for sample in other.test_step(batch):
                ref = base[sample.img_path]
                assert torch.equal(sample.pred_score_map.data,
                                   ref.pred_score_map.data)
                assert sample.pred_image_score == ref.pred_image_score
    # scores come from the set: an image outside it is refused
    outsider = mt_data['normals'][:1]
    with pytest.raises(KeyError, match='not in the scored set'):
        model.test_step(make_batch(outsider))
    with pytest.raises(ValueError, match='at least 2 images'):
        model.score_set([make_batch(items[:1])])


@pytest.mark.parametrize('source', ['torchvision', 'open_clip'])
def test_vit_extractor_class_token(source):
    """MuSc-style's image-level feature (the class token) from either ViT
    source, next to the patch tokens."""
    from imdd_mm.models.anomaly import ViTPatchExtractor
    torch.manual_seed(0)
    if source == 'open_clip':
        ext = ViTPatchExtractor(source=source, layers=(0, 1),
                                model_cfg=TINY_CLIP)
        width = 32
    else:
        ext = ViTPatchExtractor(**TINY_VIT)
        width = TINY_VIT['model_cfg']['hidden_dim']
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    outs, cls, grid = ext.forward_with_cls(x)
    assert grid == (8, 8) and cls.shape == (2, width)
    assert [o.shape for o in outs] == [(2, 64, width)] * 2
    assert all(torch.equal(a, b) for a, b in zip(outs, ext(x)[0]))


@pytest.mark.real_data
def test_mutual_scoring_sets_are_per_object(mt_data):
    """A pooled run holding two objects scores each object's images as its
    own set: the same scores as a run of that object alone."""
    model = MutualScoring(backbone=TINY_VIT, aggregation_degrees=(1, 3))
    items = mt_data['defects'] + mt_data['test_normals']
    objects = ['a', 'a', 'b', 'b', 'a', 'b']

    def batch(idx):
        data = make_batch([items[i] for i in idx])
        for sample, i in zip(data['data_samples'], idx):
            sample.set_metainfo(dict(object_name=objects[i]))
        return data

    pooled_batch = batch(range(6))
    model.score_set([pooled_batch])
    pooled = model.test_step(pooled_batch)
    # each set is min-max normalised on its own (raw maps before smoothing)
    for group in ((0, 1, 4), (2, 3, 5)):
        raw = [model._set_maps[str(items[i][0])] for i in group]
        assert max(float(r.max()) for r in raw) == pytest.approx(1.0)
        assert min(float(r.min()) for r in raw) == pytest.approx(0.0)
    only_a = [0, 1, 4]
    alone_batch = batch(only_a)
    model.score_set([alone_batch])
    alone = model.test_step(alone_batch)
    for j, i in enumerate(only_a):
        assert torch.equal(pooled[i].pred_score_map.data,
                           alone[j].pred_score_map.data)


# ---------------------------------------------------------------- CLIP
@pytest.mark.real_data
def test_clip_prompt_zero_and_few_shot(mt_data):
    torch.manual_seed(0)
    zero = CLIPPromptAD(model_cfg=TINY_CLIP, object_name='magnetic tile',
                        memory_layers=(0, 1))
    assert zero.object_name == 'magnetic tile'
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


def test_object_prompt_names_from_the_taxonomy():
    assert object_prompt_name('mvtec_ad', 'metal_nut') == 'metal nut'
    assert object_prompt_name('visa', 'pcb1') == 'printed circuit board'
    assert object_prompt_name('visa', 'chewinggum') == 'chewing gum'
    assert object_prompt_name('visa', 'macaroni2') == 'macaroni'
    assert object_prompt_name('magnetic_tile', None) == 'magnetic tile'
    # bare folder names (explicit object_name) are looked up too
    assert object_prompt_name(None, 'pcb3') == 'printed circuit board'
    assert object_prompt_name(None, 'metal_nut') == 'metal nut'
    # unknown: cleaned folder name
    assert object_prompt_name('my_source', 'gear_box7') == 'gear box'
    categories = ('bottle', 'cable', 'capsule', 'carpet', 'grid', 'hazelnut',
                  'leather', 'metal_nut', 'pill', 'screw', 'tile',
                  'toothbrush', 'transistor', 'wood', 'zipper')
    for cat in categories:
        name = object_prompt_name('mvtec_ad', cat)
        assert '_' not in name and name != 'industrial product', cat
    for cat in ('candle', 'capsules', 'cashew', 'chewinggum', 'fryum',
                'macaroni1', 'macaroni2', 'pcb1', 'pcb2', 'pcb3', 'pcb4',
                'pipe_fryum'):
        name = object_prompt_name('visa', cat)
        assert '_' not in name and not name[-1].isdigit(), cat


def test_clip_prompts_follow_each_images_object():
    """object_name=None: the text of every image is its metainfo's
    object; a mixed batch is prompted per image; explicit names win."""
    from mmdet.structures import DetDataSample
    torch.manual_seed(0)
    model = CLIPPromptAD(model_cfg=TINY_CLIP, memory_layers=(0, 1))
    model.eval()
    x = torch.randint(0, 255, (3, 3, 64, 64), dtype=torch.uint8)
    names = ['metal nut', 'printed circuit board', 'metal nut']
    samples = [DetDataSample(metainfo=dict(
        img_shape=(64, 64), ori_shape=(64, 64), object_name=n))
        for n in names]
    out = model.test_step(dict(inputs=list(x), data_samples=samples))
    assert set(model._text_cache) == {'metal nut', 'printed circuit board'}
    assert not torch.equal(model.text_features('metal nut'),
                           model.text_features('printed circuit board'))
    # the same image prompted alone with its own object: same scores
    for i in range(3):
        single = model.test_step(dict(
            inputs=[x[i]], data_samples=[DetDataSample(metainfo=dict(
                img_shape=(64, 64), ori_shape=(64, 64),
                object_name=names[i]))]))[0]
        assert torch.allclose(single.pred_score_map.data,
                              out[i].pred_score_map.data, atol=1e-5)
    bare = [DetDataSample(metainfo=dict(img_shape=(64, 64),
                                        ori_shape=(64, 64)))]
    with pytest.raises(ValueError, match="metainfo\\['object_name'\\]"):
        model.test_step(dict(inputs=[x[0]], data_samples=bare))
    fixed = CLIPPromptAD(model_cfg=TINY_CLIP, memory_layers=(0, 1),
                         object_name='pcb1')
    assert fixed.object_name == 'printed circuit board'
    assert fixed.object_names(samples, 3) == ['printed circuit board'] * 3


# ----------------------------------------------------------- DMAD / FAIR
def test_warp_identity_and_shift():
    from imdd_mm.models.anomaly.diversity_measurable import warp
    img = torch.arange(25.0).view(1, 1, 5, 5)
    assert torch.allclose(warp(img, torch.zeros(1, 2, 5, 5)), img,
                          atol=1e-5)
    flow = torch.zeros(1, 2, 5, 5)
    flow[:, 0] = 0.5  # one pixel to the right (5 px span 2 units)
    shifted = warp(img, flow)
    assert torch.allclose(shifted[0, 0, :, :4], img[0, 0, :, 1:], atol=1e-5)


@pytest.mark.real_data
@pytest.mark.parametrize('cls', ['dmad', 'fair'])
def test_reconstruction_models_train_and_score(cls, mt_data):
    torch.manual_seed(0)
    if cls == 'dmad':
        model = DiversityMeasurableAD(channels=8, latent_dim=16,
                                      num_prototypes=32, pdm_channels=8)
    else:
        model = FrequencyRestorationAD(base_channels=8, num_stages=3)
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-3))
    model.train()
    batch = make_batch(mt_data['normals'][:3])
    losses = [float(model.train_step(batch, optim)['loss'])
              for _ in range(4)]
    assert losses[-1] < losses[0]
    check_predictions(model, mt_data)
    assert any(k.startswith(('encoder.', 'restorer.'))
               for k in model.state_dict())


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
