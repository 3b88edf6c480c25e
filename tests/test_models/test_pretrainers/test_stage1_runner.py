# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Tiny Stage 1 through mmengine's Runner on real Magnetic Tile images:
the loss decreases, the EMA moves, resume continues where it stopped, and
the checkpoint feeds a Stage-2 backbone and the diffusers export."""
import imdd_mm  # noqa: F401,I001

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from imdd_mm.models.backbones import IMDDDiffusionBackbone, build_unet
from imdd_mm.models.pretrainers import (export_stage1_to_diffusers,
                                        load_stage1_weights)
from imdd_mm.utils import safe_torch_load
from .stage1_utils import tiny_stage1_cfg

pytestmark = pytest.mark.real_data

ITERS = 16
HALF = 8


def _cfg(captions, work_dir, max_iters=ITERS):
    cfg = tiny_stage1_cfg()
    cfg.train_dataloader.dataset.ann_file = str(captions)
    cfg.train_cfg.max_iters = max_iters
    cfg.default_hooks.checkpoint.interval = HALF
    cfg.default_hooks.checkpoint.max_keep_ckpts = 3
    cfg.default_hooks.logger.interval = 4
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = 'stage1_test'
    return cfg


def _loss_history(runner):
    return np.asarray(runner.message_hub.get_scalar('train/loss').data[0])


@pytest.fixture(scope='module')
def stage1_run(mt_captions, tmp_path_factory):
    work = tmp_path_factory.mktemp('stage1_run')
    runner = Runner.from_cfg(_cfg(mt_captions, work))
    runner.train()
    return dict(
        work_dir=work,
        losses=_loss_history(runner),
        final=work / f'iter_{ITERS}.pth',
        half=work / f'iter_{HALF}.pth',
        captions=mt_captions,
        unet_cfg=runner.cfg.model.unet.to_dict())


def _unet_online_and_ema(ckpt_path):
    """(online, ema) 'unet.*' state dicts of a checkpoint (EMAHook swaps:
    state_dict holds the EMA weights, ema_state_dict the online ones)."""
    ckpt = safe_torch_load(str(ckpt_path), map_location='cpu')
    ema = {k[5:]: v for k, v in ckpt['state_dict'].items()
           if k.startswith('unet.')}
    online = {k[12:]: v for k, v in ckpt['ema_state_dict'].items()
              if k.startswith('module.unet.')}
    return online, ema, ckpt


def test_loss_decreases(stage1_run):
    losses = stage1_run['losses']
    assert len(losses) == ITERS and np.isfinite(losses).all()
    first, last = losses[:5].mean(), losses[-5:].mean()
    assert last < 0.8 * first, losses


def test_ema_moves_and_differs_from_online(stage1_run):
    online, ema, ckpt = _unet_online_and_ema(stage1_run['final'])
    assert int(ckpt['ema_state_dict']['steps']) == ITERS
    init = build_unet(dict(stage1_run['unet_cfg'])).state_dict()
    assert set(online) == set(ema) == set(init)
    k = 'conv_in.weight'
    assert not torch.allclose(ema[k], init[k])
    assert not torch.allclose(ema[k], online[k])
    # the EMA lags: it is closer to the start than the online weights are
    d_ema = sum((ema[n] - init[n]).norm() for n in init)
    d_online = sum((online[n] - init[n]).norm() for n in init)
    assert 0 < d_ema < d_online
    # frozen parts never reach the checkpoint
    assert all(key.startswith(('unet.', 'captioner.mlp.'))
               for key in ckpt['state_dict'])


def test_resume_continues_at_saved_iteration(stage1_run, tmp_path,
                                             monkeypatch):
    import imdd_mm.utils.checkpoint as ckpt_mod
    loaded = []
    real = ckpt_mod.safe_torch_load

    def spy(file, *args, **kwargs):
        loaded.append(str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(ckpt_mod, 'safe_torch_load', spy)
    cfg = _cfg(stage1_run['captions'], tmp_path)
    cfg.experiment_name = 'stage1_test_resume'
    cfg.resume = True
    cfg.load_from = str(stage1_run['half'])
    runner = Runner.from_cfg(cfg)
    trained = []

    class IterSpy(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            trained.append(runner.iter)  # 0-based index of this iteration

    runner.register_hook(IterSpy(), priority='LOWEST')
    runner.train()
    assert str(stage1_run['half']) in loaded  # through imdd_mm's loader
    assert trained == list(range(HALF, ITERS))  # continues where it stopped
    assert runner.iter == ITERS
    _, _, ckpt = _unet_online_and_ema(tmp_path / f'iter_{ITERS}.pth')
    assert ckpt['meta']['iter'] == ITERS
    assert int(ckpt['ema_state_dict']['steps']) == ITERS  # EMA resumed


def test_checkpoint_feeds_stage2_backbone(stage1_run):
    online, ema, ckpt = _unet_online_and_ema(stage1_run['final'])
    bb = IMDDDiffusionBackbone(
        unet=dict(stage1_run['unet_cfg']),
        vae=tiny_stage1_cfg().model.vae.to_dict(),
        stage1_checkpoint=str(stage1_run['final']))
    got = bb.unet.state_dict()
    assert all(torch.equal(got[k], ema[k]) for k in ema)
    assert not torch.equal(got['conv_in.weight'], online['conv_in.weight'])
    feats = bb(torch.rand(1, 3, 64, 64) * 2 - 1, torch.randn(1, 1, 384))
    assert feats['s8'].shape == (1, 16, 8, 8)

    # the online weights and the captioner MLP on request
    unet = build_unet(dict(stage1_run['unet_cfg']))
    mlp = torch.nn.Sequential(
        torch.nn.Linear(512, 64), torch.nn.GELU(), torch.nn.Linear(64, 384))
    info = load_stage1_weights(
        str(stage1_run['final']), unet, mlp, use_ema=False)
    assert info['ema'] is False
    assert torch.equal(unet.conv_in.weight, online['conv_in.weight'])
    assert torch.equal(mlp[0].weight,
                       ckpt['ema_state_dict']['module.captioner.mlp.0.weight'])


def test_export_to_diffusers_and_back(stage1_run, tmp_path):
    from diffusers import UNet2DConditionModel
    out = tmp_path / 'export'
    export_stage1_to_diffusers(str(stage1_run['final']), str(out))
    assert (out / 'unet' / 'config.json').is_file()
    assert (out / 'vae' / 'config.json').is_file()
    assert (out / 'scheduler' / 'scheduler_config.json').is_file()
    _, ema, _ = _unet_online_and_ema(stage1_run['final'])
    plain = UNet2DConditionModel.from_pretrained(str(out), subfolder='unet')
    assert torch.equal(plain.state_dict()['conv_in.weight'],
                       ema['conv_in.weight'])
    # the folder is a Stage-2 source in both ways
    unet = build_unet(dict(stage1_run['unet_cfg']))
    load_stage1_weights(str(out), unet)
    assert all(torch.equal(v, ema[k]) for k, v in unet.state_dict().items())
    bb = IMDDDiffusionBackbone(unet=dict(pretrained=str(out)),
                               vae=dict(pretrained=str(out)))
    assert torch.equal(bb.unet.conv_in.weight, ema['conv_in.weight'])
    with pytest.raises(FileExistsError):
        export_stage1_to_diffusers(str(stage1_run['final']), str(out))


def test_checkpoint_records_frozen_sources(stage1_run):
    """A Stage-1 checkpoint written by mmengine's Runner records the VAE,
    text-encoder and image-tower sources (FrozenSourcesHook), which a
    Stage-2 build with the same frozen networks accepts."""
    from mmdet.registry import MODELS
    from mmengine.config import Config

    from imdd_mm.utils.provenance import FROZEN_SOURCES_KEY, file_sha256
    from tests.test_models.test_pretrainers.stage1_utils import REPO_ROOT
    ckpt = safe_torch_load(str(stage1_run['final']), map_location='cpu')
    sources = ckpt['meta'][FROZEN_SOURCES_KEY]
    assert set(sources) == {'vae', 'text_encoder.tower', 'captioner.visual'}
    assert sources['vae']['kind'] == 'random'  # tiny config, by design
    assert ckpt['meta']['imdd_random_frozen'] is True
    cfg2 = Config.fromfile(
        str(REPO_ROOT / 'configs/imdd/tiny/stage2_tiny.py'))
    cfg2.model.stage1_checkpoint = str(stage1_run['final'])
    cfg2.model.backbone.unet = dict(stage1_run['unet_cfg'])
    cfg2.model.vocabulary = ['crack']
    model = MODELS.build(cfg2.model)
    unet = model.frozen_sources()['backbone.unet']
    assert unet['sha256'] == file_sha256(stage1_run['final'])
    assert unet['ema'] is True
