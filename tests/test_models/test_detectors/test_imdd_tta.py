# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Flip test-time augmentation of IMDDMask2Former (``tools/test.py
--tta``): the merged score map equals the mean of the single-view score
maps of flipped copies of the image, flipped back (computed here through
the plain predict path), and the merged instances come from the averaged
logits."""
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.dataset import pseudo_collate

from ...tiny_stage2 import build_tiny_stage2

PACK = dict(type='PackIMDDInputs',
            meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                       'scale_factor'))
STEPS = [dict(type='mmdet.LoadImageFromNDArray'),
         dict(type='Resize', scale=(128, 128), keep_ratio=False)]


@pytest.fixture(scope='module')
def model():
    net = build_tiny_stage2(for_test=True)
    net.set_vocabulary(['scratch', 'crack', 'stain'])
    return net


def _image(h=40, w=52):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[10:20, 5:40] = 20  # an asymmetric dark bar
    return img


@torch.no_grad()
def _single(model, image):
    data = Compose(STEPS + [PACK])(dict(img=image, img_id=0))
    return model.test_step(pseudo_collate([data]))[0]


def test_flip_tta_pipeline_views():
    from imdd_mm.models.detectors import flip_tta_pipeline
    steps = flip_tta_pipeline(STEPS + [PACK])
    assert steps[:-1] == STEPS
    tta = steps[-1]
    assert tta['type'] == 'TestTimeAug'
    flips, (pack, ) = tta['transforms']
    assert [f['prob'] for f in flips] == [0.0, 1.0, 1.0]
    assert [f.get('direction') for f in flips[1:]] == [
        'horizontal', 'vertical']
    assert pack['type'] == 'PackIMDDInputs'
    assert pack['meta_keys'][-2:] == ('flip', 'flip_direction')
    with pytest.raises(ValueError, match='pack'):
        flip_tta_pipeline(STEPS)


@torch.no_grad()
def test_flip_tta_merges_before_postprocessing(model):
    from imdd_mm.models.detectors import IMDDFlipTTAModel, flip_tta_pipeline
    from imdd_mm.models.detectors.postprocess import defect_score_map
    image = _image()
    tta = IMDDFlipTTAModel(module=model)
    data = Compose(flip_tta_pipeline(STEPS + [PACK]))(dict(img=image,
                                                           img_id=0))
    merged = tta.test_step(pseudo_collate([data]))
    assert len(merged) == 1
    out = merged[0]
    assert out.metainfo['flip'] is False
    assert 'tta_cls_logits' not in out and 'tta_mask_logits' not in out

    # reference: the plain predict path on flipped copies, flipped back
    views = [(image, lambda m: m), (image[:, ::-1].copy(),
                                    lambda m: m.flip(-1)),
             (image[::-1].copy(), lambda m: m.flip(-2))]
    maps, cls_probs, mask_logits = [], [], []
    for img, back in views:
        single = _single(model, img)
        maps.append(back(single.pred_score_map.data[0]))
        data = Compose(STEPS + [PACK])(dict(img=img, img_id=0))
        batch = model.data_preprocessor(pseudo_collate([data]), False)
        cls, masks = model.predict_logits(batch['inputs'],
                                          batch['data_samples'])
        cls_probs.append(cls[0].softmax(-1))
        mask_logits.append(back(masks[0]))
        # each view's own score map follows the documented formula
        np.testing.assert_allclose(
            back(defect_score_map(cls[0], masks[0])).numpy(),
            maps[-1].numpy(), atol=1e-6)
    expected = torch.stack(maps).mean(0)
    got = out.pred_score_map.data[0]
    assert got.shape == (40, 52)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)
    # the views disagree (random model), so TTA is not the identity
    assert (maps[0] - expected).abs().max() > 1e-4

    # instances: top-k of the averaged class probabilities times the mask
    # score of the averaged mask logits
    probs = torch.stack(cls_probs).mean(0)[:, :-1]
    mask = torch.stack(mask_logits).mean(0).sigmoid()
    k = min(int(model.test_cfg['max_per_image']), probs.numel())
    scores, top = probs.flatten().topk(k)
    query = top // probs.shape[1]
    binary = mask[query] > 0.5
    scores = scores * (mask[query] * binary).flatten(1).sum(1) / (
        binary.flatten(1).sum(1) + 1e-6)
    np.testing.assert_allclose(out.pred_instances.scores.numpy(),
                               scores.numpy(), atol=1e-5)
    assert torch.equal(out.pred_instances.masks, binary)
    assert out.pred_sem_seg.sem_seg.shape == (1, 40, 52)


def test_flip_tta_needs_unflipped_view(model):
    from imdd_mm.models.detectors import IMDDFlipTTAModel
    steps = STEPS + [dict(
        type='TestTimeAug',
        transforms=[[dict(type='RandomFlip', prob=1.0)],
                    [dict(PACK, meta_keys=PACK['meta_keys'] +
                          ('flip', 'flip_direction'))]])]
    data = Compose(steps)(dict(img=_image(), img_id=0))
    with pytest.raises(ValueError, match='un-flipped'):
        IMDDFlipTTAModel(module=model).test_step(pseudo_collate([data]))
