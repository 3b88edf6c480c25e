# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""SupervisedUNetSegmenter (baseline (c) of the small study): loss, the
label map it trains on, empty ground truth, predictions' shapes and fields."""
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData

H = W = 32


def build(**kw):
    torch.manual_seed(0)
    cfg = dict(
        type='SupervisedUNetSegmenter',
        data_preprocessor=dict(type='DetDataPreprocessor',
                               mean=[127.5] * 3, std=[127.5] * 3,
                               bgr_to_rgb=True),
        unet=dict(in_channels=3, base_channels=4, num_stages=3,
                  strides=(1, 1, 1), enc_num_convs=(1, 1, 1),
                  dec_num_convs=(1, 1), downsamples=(True, True),
                  enc_dilations=(1, 1, 1), dec_dilations=(1, 1),
                  norm_cfg=dict(type='GN', num_groups=2)),
        num_classes=3,
        test_cfg=dict(sem_seg_thr=0.5, image_score_thr=0.5))
    cfg.update(kw)
    return MODELS.build(cfg)


def sample(masks, labels, ori=(H, W)):
    s = DetDataSample(metainfo=dict(img_shape=(H, W), ori_shape=ori,
                                    pad_shape=(H, W), batch_input_shape=(H, W),
                                    is_normal=not labels))
    m = np.array(masks, np.uint8).reshape(-1, H, W)
    s.gt_instances = InstanceData(labels=torch.tensor(labels,
                                                      dtype=torch.long),
                                  masks=BitmapMasks(m, H, W),
                                  bboxes=torch.zeros(len(labels), 4))
    return s


def test_label_map_later_instances_win():
    a = np.zeros((H, W), np.uint8)
    a[2:10, 2:10] = 1
    b = np.zeros((H, W), np.uint8)
    b[5:12, 5:12] = 1
    from imdd_mm.models.seg import SupervisedUNetSegmenter
    t = SupervisedUNetSegmenter._label_map(sample([a, b], [0, 2]), (H, W))
    ref = np.zeros((H, W), np.int64)
    ref[a > 0] = 1
    ref[b > 0] = 3
    assert np.array_equal(t.numpy(), ref)


def test_loss_trains_and_predict_shapes():
    model = build()
    m = np.zeros((H, W), np.uint8)
    m[8:20, 4:28] = 1
    imgs = [torch.full((3, H, W), 128, dtype=torch.uint8) for _ in range(2)]
    imgs[0][:, 8:20, 4:28] = 250
    samples = [sample([m], [1]), sample([], [])]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        data = model.data_preprocessor(
            dict(inputs=imgs, data_samples=samples), True)
        loss = model(**data, mode='loss')
        assert set(loss) == {'loss_ce', 'loss_dice'}
        total = sum(loss.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total))
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    test = [sample([m], [1], ori=(40, 50))]
    data = model.data_preprocessor(dict(inputs=imgs[:1], data_samples=test))
    with torch.no_grad():
        out = model(**data, mode='predict')[0]
    assert out.pred_score_map.data.shape == (1, 40, 50)
    assert out.pred_sem_seg.sem_seg.shape == (1, 40, 50)
    n = len(out.pred_instances)
    assert out.pred_instances.masks.shape == (n, 40, 50)
    assert out.pred_instances.bboxes.shape == (n, 4)
    # the trained square is found and named
    assert out.pred_image_label == 1
    assert 0 <= out.pred_image_score <= 1


def test_bad_num_classes():
    with pytest.raises(ValueError, match='num_classes'):
        build(num_classes=0)


def test_class_names_relabel_to_a_larger_test_vocabulary():
    """Trained on base classes (a, c), tested on a split whose classes are
    (a, b, c): labels follow the names, not the training indices."""
    model = build(num_classes=2, class_names=('a', 'c'))
    model.eval()
    m = np.zeros((H, W), np.uint8)
    m[4:20, 4:20] = 1
    img = torch.full((3, H, W), 128, dtype=torch.uint8)
    with torch.no_grad():
        # make the classifier predict training label 1 ('c') everywhere
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0., 0., 5.]))
    data = model.data_preprocessor(dict(inputs=[img],
                                        data_samples=[sample([m], [0])]))
    with torch.no_grad():
        same = model(**data, mode='predict')[0]
    assert same.pred_image_label == 1
    assert same.metainfo['pred_label_names'] == ('a', 'c')
    model.eval_dataset_vocabulary = ('a', 'b', 'c')
    data = model.data_preprocessor(dict(inputs=[img],
                                        data_samples=[sample([m], [0])]))
    with torch.no_grad():
        out = model(**data, mode='predict')[0]
    assert out.pred_image_label == 2  # 'c' in (a, b, c)
    assert out.pred_instances.labels.tolist() == [2]
    assert set(out.pred_sem_seg.sem_seg.unique().tolist()) == {3}
    assert out.metainfo['pred_label_names'] == ('a', 'b', 'c')
    with pytest.raises(ValueError, match='class_names'):
        build(num_classes=2, class_names=('a', ))
