# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""IMDDMask2Former on CPU with the tiny Stage-2 config (tiny random U-Net,
VAE and CLIP image tower, offline MiniLM text encoder)."""
import copy
from pathlib import Path

import imdd_mm  # noqa: F401
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.structures import InstanceData

from imdd_mm.models.detectors import masks_to_boxes, split_components

REPO = Path(__file__).resolve().parents[3]
TINY = REPO / 'configs' / 'imdd' / 'tiny' / 'stage2_tiny.py'
VOCAB = ('blowhole', 'crack', 'fray')
H = W = 64


@pytest.fixture(scope='module')
def tiny_cfg():
    register_all_modules()
    return Config.fromfile(str(TINY))


def build(cfg, **overrides):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.vocabulary = list(VOCAB)
    model_cfg.update(overrides)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


@pytest.fixture(scope='module')
def model(tiny_cfg):
    return build(tiny_cfg)


def make_samples(kinds, ori_shape=(H, W)):
    """kinds: 'defect' (one mask), 'normal' (no instance), 'caption_only'
    (defective, no mask, a caption)."""
    samples = []
    for i, kind in enumerate(kinds):
        meta = dict(
            img_shape=(H, W), ori_shape=ori_shape, batch_input_shape=(H, W),
            pad_shape=(H, W), scale_factor=(W / ori_shape[1],
                                            H / ori_shape[0]),
            caption='', caption_nouns=[], is_normal=kind == 'normal')
        masks = np.zeros((0, H, W), np.uint8)
        labels = torch.zeros(0, dtype=torch.long)
        if kind == 'defect':
            masks = np.zeros((1, H, W), np.uint8)
            masks[0, 8 + 4 * i:30 + 4 * i, 10:40] = 1
            labels = torch.tensor([i % len(VOCAB)])
            meta.update(caption=f'a {VOCAB[i % 3]} on a tile',
                        caption_nouns=[VOCAB[i % 3], 'tile'])
        elif kind == 'caption_only':
            meta.update(caption='a crack on the surface',
                        caption_nouns=['crack', 'surface'] if i % 2 else
                        ['fray', 'edge'])
        sample = DetDataSample(metainfo=meta)
        sample.gt_instances = InstanceData(
            labels=labels,
            masks=BitmapMasks(masks, H, W),
            bboxes=masks_to_boxes(torch.from_numpy(masks).bool()))
        samples.append(sample)
    return samples


def run(model, samples, mode, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (3, H, W), generator=g,
                            dtype=torch.uint8) for _ in samples]
    data = model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), mode == 'loss')
    return model(**data, mode=mode)


def test_loss_and_predict(model):
    model.train()
    losses = run(model, make_samples(['defect', 'defect']), 'loss')
    for key in ('loss_cls', 'loss_mask', 'loss_dice', 'loss_grounding',
                'd0.loss_cls', 'd1.loss_mask'):
        assert key in losses and torch.isfinite(losses[key])
    assert losses['loss_mask'] > 0 and losses['loss_dice'] > 0
    assert losses['loss_grounding'] > 0

    model.eval()
    with torch.no_grad():
        out = run(model, make_samples(['defect'], ori_shape=(40, 50)),
                  'predict')[0]
    inst = out.pred_instances
    n = len(inst)
    assert 0 < n <= model.test_cfg['max_per_image']
    assert inst.masks.shape == (n, 40, 50) and inst.masks.dtype == torch.bool
    assert inst.bboxes.shape == (n, 4)
    assert torch.equal(inst.bboxes, masks_to_boxes(inst.masks))
    assert int(inst.labels.max()) < len(VOCAB)
    assert out.pred_sem_seg.sem_seg.shape == (1, 40, 50)
    assert int(out.pred_sem_seg.sem_seg.max()) <= len(VOCAB)
    score = out.pred_score_map.data
    assert score.shape == (1, 40, 50) and score.dtype == torch.float32
    assert float(score.min()) >= 0 and float(score.max()) <= 1
    assert out.pred_image_label in [-1] + list(range(len(VOCAB)))
    assert 0 <= out.pred_image_score <= 1
    # deterministic features: the same image gives the same prediction
    with torch.no_grad():
        again = run(model, make_samples(['defect'], ori_shape=(40, 50)),
                    'predict')[0]
    assert torch.equal(again.pred_score_map.data, score)


def test_defect_free_images_give_zero_mask_and_dice_loss(model):
    model.train()
    losses = run(model, make_samples(['normal', 'normal']), 'loss')
    for key, value in losses.items():
        if 'loss_mask' in key or 'loss_dice' in key:
            assert value.item() == 0.0, key
    assert losses['loss_cls'] > 0  # every query learns "no object"
    total = sum(losses.values())
    total.backward()  # the zero losses keep a graph


def test_caption_only_samples_train_grounding_only(model):
    model.train()
    losses = run(model, make_samples(['caption_only', 'caption_only']),
                 'loss')
    assert losses['loss_cls'].item() == 0.0
    assert losses['loss_mask'].item() == 0.0
    assert losses['loss_dice'].item() == 0.0
    assert losses['loss_grounding'] > 0


def test_vocabulary_swap(model):
    model.eval()
    samples = make_samples(['defect'])
    with torch.no_grad():
        before = run(model, copy.deepcopy(samples), 'predict')[0]
        names_before = {VOCAB[i] for i in before.pred_instances.labels}
        new_vocab = ('scratch', 'dent', 'stain', 'oil spot')
        model.set_vocabulary(new_vocab)
        assert model.panoptic_head.num_classes == 4
        after = run(model, copy.deepcopy(samples), 'predict')[0]
        names_after = {new_vocab[i] for i in after.pred_instances.labels}
        assert names_after and names_after <= set(new_vocab)
        assert names_after != names_before
        # classification follows the names: a permuted vocabulary permutes
        # the class logits
        feats = model.extract_feat(
            run_inputs(model, samples), samples)
        model.set_vocabulary(['x ray', 'yellow stain', 'zinc spot'])
        cls_a, _ = model.panoptic_head.predict(feats, samples)
        model.set_vocabulary(['zinc spot', 'yellow stain', 'x ray'])
        cls_b, _ = model.panoptic_head.predict(feats, samples)
        assert torch.allclose(cls_a[..., [2, 1, 0, 3]], cls_b, atol=1e-5)
    model.test_vocabulary = None
    model.panoptic_head.set_vocabulary(VOCAB)


def run_inputs(model, samples):
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (3, H, W), generator=g,
                            dtype=torch.uint8) for _ in samples]
    return model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), False)['inputs']


def test_frozen_parts_not_in_state_dict_nor_optimizer(tiny_cfg, model):
    state = model.state_dict()
    assert not [k for k in state if k.startswith(('backbone.', 'captioner.'))]
    assert not [k for k in state if 'text_encoder' in k or 'tower' in k]
    frozen = [model.backbone.unet, model.backbone.vae,
              model.captioner.visual, model.captioner.mlp,
              model.panoptic_head.text_encoder.tower]
    frozen_ids = {id(p) for m in frozen for p in m.parameters()}
    assert frozen_ids and all(not p.requires_grad for m in frozen
                              for p in m.parameters())
    optim = build_optim_wrapper(model, tiny_cfg.optim_wrapper)
    in_optim = {id(p) for g in optim.optimizer.param_groups
                for p in g['params']}
    assert not in_optim & frozen_ids
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert in_optim == trainable


def test_caption_conditioning_leaves_no_parameter_unused(tiny_cfg):
    model = build(tiny_cfg, cond_mode='caption', freeze_captioner=False)
    assert any(p.requires_grad for p in model.captioner.mlp.parameters())
    model.train()
    # one captioned and one uncaptioned sample; whatever the coin flips,
    # c = m * e_T + (1 - m) * t_imp keeps the captioner in the graph
    losses = run(model, make_samples(['defect', 'normal']), 'loss')
    sum(losses.values()).backward()
    unused = [n for n, p in model.named_parameters()
              if p.requires_grad and p.grad is None]
    assert not unused, unused
    assert any(p.grad.abs().sum() > 0 for p in model.captioner.mlp.parameters())


def test_condition_modes(tiny_cfg, model):
    img = torch.rand(2, 3, H, W) * 2 - 1
    implicit = model.compute_condition(img)
    assert implicit.shape == (2, 1, 384)
    none = build(tiny_cfg, cond_mode='none')
    assert none.captioner is None
    assert torch.count_nonzero(none.compute_condition(img)) == 0
    null = build(tiny_cfg, cond_mode='null')
    c = null.compute_condition(img)
    assert c.shape == (2, 1, 384) and torch.equal(c[0], c[1])
    assert torch.count_nonzero(c) > 0
    with pytest.raises(ValueError, match='cond_mode'):
        build(tiny_cfg, cond_mode='pseudo')


def test_stage1_checkpoint_is_loaded_at_construction(tiny_cfg, model,
                                                     tmp_path):
    unet_state = {f'unet.{k}': torch.full_like(v, 0.5)
                  for k, v in model.backbone.unet.state_dict().items()}
    mlp_state = {f'captioner.mlp.{k}': torch.full_like(v, 0.25)
                 for k, v in model.captioner.mlp.state_dict().items()}
    path = tmp_path / 'stage1.pth'
    torch.save(dict(state_dict={**unet_state, **mlp_state}, meta={}), path)
    loaded = build(tiny_cfg, stage1_checkpoint=str(path))
    p = next(loaded.backbone.unet.parameters())
    assert torch.all(p == 0.5)
    assert torch.all(next(loaded.captioner.mlp.parameters()) == 0.25)


def test_masks_to_boxes_and_components():
    masks = torch.zeros(2, 10, 12, dtype=torch.bool)
    masks[0, 1:3, 2:4] = True
    masks[0, 6:9, 8:11] = True  # second blob of the same instance
    boxes = masks_to_boxes(masks)
    assert boxes[0].tolist() == [2, 1, 11, 9]
    assert boxes[1].tolist() == [0, 0, 0, 0]
    comp, labels, scores = split_components(
        masks, torch.tensor([3, 1]), torch.tensor([0.9, 0.2]))
    assert comp.shape[0] == 2 and labels.tolist() == [3, 3]
    assert sorted(masks_to_boxes(comp).tolist()) == [[2, 1, 4, 3],
                                                     [8, 6, 11, 9]]
