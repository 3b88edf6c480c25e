# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The CUDA path at paper size (``pytest -m gpu``; skipped without CUDA).

Full-size SD-1.5-shaped models at 512 px with random frozen weights (asked
for openly with ``allow_random_frozen=True``): mixed-precision training
steps, frozen parts untouched, gradients only where the paper trains,
fp32-vs-bf16 agreement, NCCL through ``tools/dist_train.sh`` and device
placement of everything held outside the module tree.

Tolerances (bf16 has an 8-bit mantissa, ~4e-3 relative rounding per op):
backbone features agree within 5e-2 relative L2 over the U-Net's depth,
per-pixel defect scores within 5e-2 mean absolute difference.
"""
import copy
import json
import socket

import pytest
import torch

from imdd_mm.testing import (FULL_STAGE1_CFG, FULL_STAGE2_CFG,
                             build_from_config, frozen_modules, stage1_batch,
                             stage2_batch, trainable_parameters)
from tests.test_tools._runner import REPO_ROOT, run_tool

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
]

SIZE = 512
FEATURE_RTOL = 5e-2
SCORE_ATOL = 5e-2


def _fingerprint(modules) -> dict:
    """Sum and abs-sum of every frozen tensor (parameters and buffers)."""
    out = {}
    for name, mod in modules.items():
        for pname, t in list(mod.named_parameters()) + list(
                mod.named_buffers()):
            if t.is_floating_point():
                out[f'{name}.{pname}'] = (float(t.double().sum()),
                                          float(t.double().abs().sum()))
    return out


def _optim_wrapper(model, cfg_path, dtype):
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    cfg = copy.deepcopy(Config.fromfile(str(cfg_path)).optim_wrapper)
    cfg['type'] = 'AmpOptimWrapper'
    cfg['dtype'] = dtype
    return build_optim_wrapper(model, cfg)


@pytest.fixture(scope='module')
def stage2_model():
    model = build_from_config(FULL_STAGE2_CFG, device='cuda')
    yield model
    del model
    torch.cuda.empty_cache()


@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_stage2_train_step_full_size(stage2_model, dtype):
    """One Table-9 step (AdamW, clip 0.01) under AMP at 512 px."""
    model = stage2_model
    model.train()
    frozen = frozen_modules(model)
    assert {'backbone.unet', 'backbone.vae'} <= set(frozen), sorted(frozen)
    before = _fingerprint(frozen)
    head_before = {
        n: p.detach().clone()
        for n, p in trainable_parameters(model).items()
    }
    assert head_before and all(
        n.startswith(('panoptic_head.', 'captioner.mlp.'))
        for n in head_before), sorted(head_before)[:5]
    ow = _optim_wrapper(model, FULL_STAGE2_CFG, dtype)
    losses = model.train_step(stage2_batch(2, SIZE, seed=1), ow)
    for key, value in losses.items():
        assert torch.isfinite(value).all(), (key, value)
    assert float(losses['loss']) > 0
    # frozen networks: bit-identical, no gradient buffers
    assert _fingerprint(frozen) == before
    for name, mod in frozen.items():
        assert all(p.grad is None for p in mod.parameters()), name
        assert not mod.training, f'{name} left eval mode'
    # gradients and updates only in the trainable head
    changed = [
        n for n, p in trainable_parameters(model).items()
        if not torch.equal(p.detach(), head_before[n])
    ]
    assert changed, 'the optimizer step changed no head parameter'
    ow.zero_grad()


def test_stage2_fp32_vs_bf16_predictions(stage2_model):
    model = stage2_model
    model.eval()
    batch = stage2_batch(2, SIZE, seed=2)
    data = model.data_preprocessor(copy.deepcopy(batch), False)
    with torch.no_grad():
        cond = model.compute_condition(data['inputs'], data['data_samples'])
        feats32 = model.backbone(data['inputs'], cond)
        out32 = model.test_step(copy.deepcopy(batch))
        with torch.autocast('cuda', dtype=torch.bfloat16):
            feats16 = model.backbone(data['inputs'], cond)
            out16 = model.test_step(copy.deepcopy(batch))
    for key, f32 in feats32.items():
        f16 = feats16[key].float()
        rel = float((f16 - f32).norm() / f32.norm().clamp_min(1e-12))
        assert rel < FEATURE_RTOL, (key, rel)
    for a, b in zip(out32, out16):
        s32, s16 = a.pred_score_map.data, b.pred_score_map.data.float()
        assert s32.shape == s16.shape
        diff = float((s32 - s16).abs().mean())
        assert diff < SCORE_ATOL, diff


def test_device_placement_of_hidden_state(stage2_model):
    """Frozen networks, cached text embeddings and the fixed noise follow
    the model to the GPU."""
    model = stage2_model
    model.eval()
    with torch.no_grad():
        model.test_step(stage2_batch(1, 256, seed=3))
    for name, mod in frozen_modules(model).items():
        for t in list(mod.parameters()) + list(mod.buffers()):
            assert t.is_cuda, f'{name} holds a CPU tensor'
    hidden = []
    for mod_name, mod in model.named_modules():
        for attr, value in vars(mod).items():
            if isinstance(value, torch.Tensor):
                hidden.append((f'{mod_name}.{attr}', value))
            elif isinstance(value, dict):
                hidden += [(f'{mod_name}.{attr}[{k!r}]', v)
                           for k, v in value.items()
                           if isinstance(v, torch.Tensor)]
    assert hidden, 'expected cached tensors (noise, text embeddings)'
    on_cpu = [n for n, t in hidden if not t.is_cuda]
    assert not on_cpu, on_cpu


def test_stage1_step_gradient_checkpointing_fp16():
    model = build_from_config(
        FULL_STAGE1_CFG, device='cuda', gradient_checkpointing=True)
    model.train()
    frozen = frozen_modules(model)
    assert 'vae' in frozen and 'unet' not in frozen, sorted(frozen)
    before = _fingerprint(frozen)
    unet_before = {
        n: p.detach().clone()
        for n, p in model.unet.named_parameters()
    }
    ow = _optim_wrapper(model, FULL_STAGE1_CFG, 'float16')
    losses = model.train_step(stage1_batch(4, SIZE, seed=4), ow)
    for key, value in losses.items():
        assert torch.isfinite(value).all(), (key, value)
    assert _fingerprint(frozen) == before
    changed = sum(not torch.equal(p.detach(), unet_before[n])
                  for n, p in model.unet.named_parameters())
    assert changed > 0
    del model, ow
    torch.cuda.empty_cache()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_dist_train_one_process_nccl(tmp_path):
    work = tmp_path / 'nccl'
    run_tool([
        'bash', 'tools/dist_train.sh', REPO_ROOT / 'tests' / 'data' /
        'toy_config.py', '1', '--work-dir', work
    ],
             PORT=_free_port())
    rec = json.loads((work / 'rank0.json').read_text())
    assert rec['backend'] == 'nccl'
    assert rec['device'].startswith('cuda')
    assert rec['iters'] == 6 and (work / 'iter_6.pth').is_file()


def test_greedy_coreset_cuda_matches_cpu():
    """PatchCore's exact greedy coreset on the GPU (``device='cuda'``)
    picks the points the CPU picks: the same first selections (far-apart
    points, no near ties) and the same coverage radius (the largest
    distance of any point to its nearest selected point, what the greedy
    k-center minimises) within fp32 rounding; indices come back on the
    features' device."""
    from imdd_mm.models.anomaly.memory_bank import (greedy_coreset,
                                                    nearest_neighbors)
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(20000, 256, generator=gen)
    cpu = greedy_coreset(feats, 500, projection_dim=128, seed=0)
    gpu = greedy_coreset(feats, 500, projection_dim=128, seed=0,
                         device='cuda')
    assert gpu.device.type == 'cpu' and gpu.shape == cpu.shape
    assert torch.equal(gpu[:32], cpu[:32])
    radius = {}
    for key, idx in (('cpu', cpu), ('gpu', gpu)):
        dist, _ = nearest_neighbors(feats, feats[idx], k=1)
        radius[key] = float(dist.max())
    assert radius['gpu'] == pytest.approx(radius['cpu'], rel=1e-3)
    on_gpu = greedy_coreset(feats.cuda(), 500, projection_dim=128, seed=0)
    assert on_gpu.device.type == 'cuda'
    assert torch.equal(on_gpu.cpu()[:32], cpu[:32])
