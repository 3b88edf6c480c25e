# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Precomputed-latent mode: shards from the frozen encoders, the latent
dataset/transforms and a few Runner iterations training from them."""
import imdd_mm  # noqa: F401,I001

import json

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from imdd_mm.datasets import LatentCaptionDataset
from imdd_mm.models.pretrainers import precompute_stage1_latents
from imdd_mm.utils import register_all_modules
from .stage1_utils import build_tiny_pretrainer, tiny_stage1_cfg

pytestmark = pytest.mark.real_data

LATENT_PIPELINE = [
    dict(type='RandomFlipLatent', hflip_prob=0.5, vflip_prob=0.5),
    dict(type='PackLatentInputs')
]


@pytest.fixture(scope='module')
def latents(mt_captions, tmp_path_factory):
    cfg = tiny_stage1_cfg()
    cfg.train_dataloader.dataset.ann_file = str(mt_captions)
    out = tmp_path_factory.mktemp('latents') / 'lat'
    index = precompute_stage1_latents(cfg, str(out), shard_size=6,
                                      batch_size=8)
    return out, index


def test_shards_hold_the_frozen_encoder_outputs(latents, mt_captions):
    out, index = latents
    assert index['num_samples'] == 16
    assert [s['num'] for s in index['shards']] == [6, 6, 4]
    assert index['latent_shape'] == [8, 8, 8]  # mean + logvar, 64 px / 8
    assert json.loads((out / 'index.json').read_text()) == index
    register_all_modules()
    ds = LatentCaptionDataset(ann_file=str(out / 'index.json'),
                              pipeline=LATENT_PIPELINE)
    assert len(ds) == 16
    first = ds.get_data_info(0)
    captions = [json.loads(line)['caption']
                for line in mt_captions.read_text().splitlines()]
    assert first['caption'] == captions[0]
    assert ds.get_data_info(13)['caption'] == captions[13]
    model = build_tiny_pretrainer()
    assert torch.allclose(first['text_embed'],
                          model.encode_text([captions[0]])[0], atol=2e-3)
    item = ds[7]
    assert tuple(item['inputs'].shape) == (8, 8, 8)
    assert item['data_samples'].text_embed.shape == (384, )
    assert item['data_samples'].image_embed.shape == (512, )


def test_flip_latent():
    from imdd_mm.datasets.transforms.stage1 import RandomFlipLatent
    lat = torch.arange(16.).view(1, 4, 4)
    np.random.seed(0)
    seen = set()
    for _ in range(20):
        r = RandomFlipLatent(0.5, 0.5)(dict(latent=lat.clone()))
        seen.add(r['latent_flip'])
        expect = torch.flip(lat, r['latent_flip']) if r['latent_flip'] \
            else lat
        assert torch.equal(r['latent'], expect)
    assert seen == {(), (-1, ), (-2, ), (-1, -2)}


def test_runner_trains_from_latents(latents, tmp_path):
    out, _ = latents
    cfg = tiny_stage1_cfg()
    cfg.model.input_type = 'latent'
    cfg.model.data_preprocessor = dict(type='BaseDataPreprocessor')
    cfg.train_dataloader.dataset = dict(
        type='LatentCaptionDataset', ann_file=str(out / 'index.json'),
        pipeline=LATENT_PIPELINE)
    cfg.train_cfg.max_iters = 4
    cfg.default_hooks.checkpoint.interval = 4
    cfg.work_dir = str(tmp_path)
    cfg.experiment_name = 'stage1_latents_test'
    runner = Runner.from_cfg(cfg)
    before = runner.model.unet.conv_in.weight.detach().clone()
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 4 and np.isfinite(losses).all()
    assert not torch.equal(before, runner.model.unet.conv_in.weight)
    assert (tmp_path / 'iter_4.pth').is_file()
