# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""MMSegmentation path: registration, the tiny seg config trains a few
steps on real Magnetic Tile images and predicts a segmentation map scored by
mmseg's IoUMetric."""
from pathlib import Path

import imdd_mm  # noqa: F401
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmseg.registry import DATASETS, MODELS, TRANSFORMS
from mmseg.structures import SegDataSample

from ..test_detectors._mt_subset import convert_subset, shared_mt_root

REPO = Path(__file__).resolve().parents[3]
SEG_TINY = REPO / 'configs' / 'imdd' / 'seg' / 'seg_tiny.py'


def test_import_registers_into_mmseg():
    for name in ('IMDDEncoderDecoder', 'OVMask2FormerSegHead',
                 'IMDDDiffusionBackbone', 'ImplicitCaptioner'):
        assert MODELS.get(name) is not None, name
    assert DATASETS.get('IMDDCocoSegDataset') is not None
    assert TRANSFORMS.get('LoadIMDDSemSegAnnotations') is not None


def test_tiny_seg_model_predicts_a_segmentation_map():
    cfg = Config.fromfile(str(SEG_TINY))
    with DefaultScope.overwrite_default_scope('mmseg'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    model.eval()
    assert model.num_classes == 6
    state = model.state_dict()
    assert not [k for k in state if k.startswith(('backbone.',
                                                  'captioner.'))]
    meta = dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64))
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 64),
                                      dtype=torch.uint8)],
                data_samples=[SegDataSample(metainfo=meta)])
    with torch.no_grad():
        out = model.test_step(data)[0]
    seg = out.pred_sem_seg.data
    assert seg.shape == (1, 64, 64)
    assert int(seg.max()) < 6
    assert out.seg_logits.data.shape == (6, 64, 64)


def test_trainable_captioner_gets_gradient_through_frozen_unet():
    """freeze_captioner=False: the MLP learns through the frozen U-Net, so
    the backbone must let gradients reach the conditioning."""
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    cfg = Config.fromfile(str(SEG_TINY))
    cfg.model.freeze_captioner = False
    with DefaultScope.overwrite_default_scope('mmseg'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    assert model.backbone.cond_grad
    mlp = model.captioner.mlp
    assert mlp in list(model.children()) or any(
        m is mlp for m in model.modules())
    model.train()
    seg = torch.zeros(1, 64, 64, dtype=torch.long)
    seg[0, 10:30, 12:40] = 1
    meta = dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64))
    sample = SegDataSample(metainfo=meta)
    sample.gt_sem_seg = PixelData(data=seg)
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 64),
                                      dtype=torch.uint8)] * 2,
                data_samples=[sample, sample.clone()])
    data = model.data_preprocessor(data, True)
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    grads = [p.grad for p in mlp.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # the frozen U-Net itself still gets none
    assert all(p.grad is None for p in model.backbone.unet.parameters())


@pytest.mark.real_data
@pytest.mark.slow
def test_tiny_seg_config_trains_on_magnetic_tile(tmp_path, monkeypatch):
    monkeypatch.setattr(Config, 'pretty_text', property(lambda c: c.text))
    work = convert_subset(shared_mt_root(), tmp_path, per_class=3)
    cfg = Config.fromfile(str(SEG_TINY))
    cfg.work_dir = str(tmp_path / 'work')
    for split, loader in (('train', cfg.train_dataloader),
                          ('val', cfg.val_dataloader)):
        loader.dataset.data_root = str(work)
        loader.dataset.ann_file = f'out/annotations/{split}.json'
        loader.dataset.data_prefix = dict(img_path='mt/')
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=10**6, by_epoch=False,
        save_last=False)
    cfg.train_cfg.max_iters = 6
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0)
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))
    metrics = runner.test()
    assert 'mIoU' in metrics
