# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""DefectGenerationPipeline: size, count, per-seed determinism, guidance."""
import imdd_mm  # noqa: F401,I001

import numpy as np
import pytest
import torch

from imdd_mm.generation import DefectGenerationPipeline, build_scheduler
from ..test_models.test_pretrainers.stage1_utils import build_tiny_pretrainer

PROMPTS = ['magnetic tile with a crack defect', 'steel strip with scratches',
           'defect-free magnetic tile surface']


@pytest.fixture(scope='module')
def pipe():
    torch.manual_seed(0)
    model = build_tiny_pretrainer().eval()
    return DefectGenerationPipeline.from_pretrainer(model)


def test_size_count_and_determinism(pipe):
    kw = dict(height=64, width=128, num_inference_steps=3,
              guidance_scale=3.0)
    a = pipe(PROMPTS, [0, 1, 2], batch_size=3, **kw)
    assert len(a) == 3
    assert all(im.shape == (64, 128, 3) and im.dtype == np.uint8 for im in a)
    b = pipe(PROMPTS, [0, 1, 2], batch_size=3, **kw)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # per-image seeds: batch size and neighbours do not matter
    c = pipe(PROMPTS[1:2], [1], batch_size=1, **kw)
    assert np.abs(c[0].astype(int) - a[1]).max() <= 1
    d = pipe(PROMPTS[1:2], [7], batch_size=1, **kw)
    assert not np.array_equal(d[0], c[0])


def test_ddpm_and_guidance(pipe):
    kw = dict(height=64, width=64, num_inference_steps=3)
    x = pipe(PROMPTS[:2], [5, 6], scheduler='ddpm', guidance_scale=2.0, **kw)
    y = pipe(PROMPTS[:2], [5, 6], scheduler='ddpm', guidance_scale=2.0, **kw)
    assert all(np.array_equal(p, q) for p, q in zip(x, y))
    no_cfg = pipe(PROMPTS[:1], [5], guidance_scale=1.0, **kw)
    cfg = pipe(PROMPTS[:1], [5], guidance_scale=5.0, **kw)
    assert not np.array_equal(no_cfg[0], cfg[0])


def test_scheduler_uses_training_schedule(pipe):
    s = build_scheduler('ddim', **pipe.scheduler_cfg)
    assert s.config.beta_schedule == 'linear'
    assert s.betas[0].item() == pytest.approx(1e-4)
    assert s.betas[-1].item() == pytest.approx(0.02)
    with pytest.raises(ValueError, match='scheduler'):
        build_scheduler('euler')


def test_bad_arguments(pipe):
    with pytest.raises(ValueError, match='multiples of 8'):
        pipe(PROMPTS[:1], [0], height=60, width=64)
    with pytest.raises(ValueError, match='seeds'):
        pipe(PROMPTS[:2], [0])
