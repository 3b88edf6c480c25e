# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""DMAD-PPDM-style (:class:`ReverseDistillationPPDM`): the RD map and loss,
warping back, the deformation bounds and smoothness against values computed
here independently; tiny-model loss / predict contracts, gradients only in
the trainable parts, the frozen teacher's provenance."""
import hashlib

import numpy as np
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData

from mmdet.structures import DetDataSample
from imdd_mm.models.anomaly import (OneClassBottleneck, PreDeformation,
                                    ReverseDistillationPPDM,
                                    ReverseResNetDecoder)
from imdd_mm.models.anomaly.pre_deformation import FIELDS, smoothness
from imdd_mm.models.anomaly.reverse_distillation_ppdm import (
    cosine_distance_map, distillation_loss)
from imdd_mm.utils.provenance import FrozenWeightsUnavailable
from .conftest import make_batch

TINY = dict(teacher_arch='resnet18', teacher_seed=0, allow_random_frozen=True,
            decoder_layers=(1, 1, 1), bottleneck_blocks=1, offset_channels=4)


def tiny(**kwargs) -> ReverseDistillationPPDM:
    cfg = dict(TINY)
    cfg.update(kwargs)
    return ReverseDistillationPPDM(**cfg)


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return tiny()


def _cos_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(0) / np.maximum(
        np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0), 1e-8)


# ------------------------------------------------------- reference values
def test_cosine_distance_map_matches_reference():
    rng = np.random.default_rng(0)
    t1, s1 = rng.normal(size=(2, 2, 5, 8, 8))  # full-size level
    t2 = np.broadcast_to(rng.normal(size=(5, 1, 1)), (5, 4, 4))  # constant
    s2 = np.broadcast_to(rng.normal(size=(5, 1, 1)), (5, 4, 4))
    t = [torch.tensor(t1, dtype=torch.float32),
         torch.tensor(np.array([t2, t2]), dtype=torch.float32)]
    s = [torch.tensor(s1, dtype=torch.float32),
         torch.tensor(np.array([s2, s2]), dtype=torch.float32)]
    out = cosine_distance_map(t, s, (8, 8)).numpy()
    for b in range(2):
        ref = 1 - _cos_np(t1[b], s1[b]) + (1 - _cos_np(t2, s2)[0, 0])
        np.testing.assert_allclose(out[b], ref, rtol=1e-5, atol=1e-5)
    # identical features (a perfect student) score zero everywhere
    assert cosine_distance_map(t, t, (8, 8)).abs().max() < 1e-5


def test_distillation_loss_flattens_each_map():
    rng = np.random.default_rng(1)
    t = [rng.normal(size=(3, 4, 2, 2)), rng.normal(size=(3, 6, 1, 1))]
    s = [rng.normal(size=(3, 4, 2, 2)), rng.normal(size=(3, 6, 1, 1))]
    ref = 0.0
    for a, b in zip(t, s):
        a, b = a.reshape(3, -1), b.reshape(3, -1)
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(
            b, axis=1)
        ref += np.mean(1 - cos)
    got = distillation_loss([torch.tensor(x) for x in t],
                            [torch.tensor(x) for x in s])
    assert float(got) == pytest.approx(ref, rel=1e-6)


def test_undo_applies_known_inverse_shifts():
    """Inverse fine then inverse coarse warp: with whole-pixel shifts the
    result is the map shifted by the sum (interior pixels)."""
    w = 9
    img = torch.arange(float(w * w)).view(1, 1, w, w)
    px = 2.0 / (w - 1)  # one pixel in normalised units (align_corners)
    fields = {n: torch.zeros(1, 2, w, w) for n in FIELDS}
    fields['coarse_inv'][:, 0] = 2 * px  # x + 2
    fields['fine_inv'][:, 1] = 1 * px  # y + 1
    out = PreDeformation.undo(img, fields)
    # out(y, x) = img(y + 1, x + 2)
    assert torch.allclose(out[0, 0, :-1, :-2], img[0, 0, 1:, 2:], atol=1e-4)
    mag = PreDeformation.deformation_magnitude(fields)
    assert torch.allclose(mag, torch.full_like(mag, 3 * px), atol=1e-6)


def test_fields_are_bounded_and_saturate_at_the_bound():
    torch.manual_seed(0)
    net = PreDeformation(channels=4, max_offsets=(0.1, 0.03)).eval()
    x = torch.randn(2, 3, 32, 32) * 5
    out = net(x)
    for name, bound in (('coarse', 0.1), ('fine', 0.03),
                        ('coarse_inv', 0.1), ('fine_inv', 0.03)):
        assert out[name].shape == (2, 2, 32, 32)
        assert out[name].abs().max() <= bound + 1e-7
    assert out['deformed'].shape == x.shape
    assert net.magnitude_bound == pytest.approx(2**0.5 * 0.13)
    with torch.no_grad():  # saturate every tanh at +1
        for head in net.heads.values():
            head[-2].weight.zero_()
            head[-2].bias.fill_(50.0)
    out = net(x)
    assert torch.allclose(out['coarse'], torch.full_like(out['coarse'], 0.1))
    mag = PreDeformation.deformation_magnitude(out)
    assert torch.allclose(mag, torch.full_like(mag, net.magnitude_bound),
                          atol=1e-5)


def test_official_bounds_are_8_and_3_pixels_at_256():
    net = PreDeformation(channels=2)
    assert net.max_offsets['coarse'] * 256 / 2 == pytest.approx(8)
    assert net.max_offsets['fine'] * 256 / 2 == pytest.approx(3)


def test_smoothness_matches_loop_reference():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(1, 2, 4, 5))
    pad = np.pad(f, ((0, 0), (0, 0), (1, 1), (1, 1)))
    total = 0.0
    for y in range(4):
        for x in range(5):
            for c in range(2):
                win = pad[0, c, y:y + 3, x:x + 3]
                total += abs(f[0, c, y, x] - (win.sum() - win[1, 1]) / 8)
    assert float(smoothness(torch.tensor(f))) == pytest.approx(total / 20)
    # a constant field: 0 inside; the zero padding shows at the 16 edge
    # pixels (1 - 5/8) and 4 corners (1 - 3/8), per channel
    const = torch.ones(1, 2, 6, 6)
    ref = 2 * (16 * 3 / 8 + 4 * 5 / 8) / 36
    assert float(smoothness(const)) == pytest.approx(ref)


# ------------------------------------------------------------- RD pieces
@pytest.mark.parametrize('bottleneck', [True, False])
@pytest.mark.parametrize('codes', [None, 8])
def test_bottleneck_and_decoder_mirror_the_teacher(bottleneck, codes):
    ch = (32, 64, 128)
    feats = [torch.randn(2, c, 16 // 2**i, 16 // 2**i)
             for i, c in enumerate(ch)]
    ocbe = OneClassBottleneck(ch, bottleneck, 1, 64, num_codes=codes)
    z, loss = ocbe(feats)
    assert z.shape == (2, 256, 2, 2)
    assert (float(loss) > 0) == (codes is not None)
    dec = ReverseResNetDecoder(ch, bottleneck, (1, 1, 1), 64)
    outs = dec(z)
    assert [o.shape for o in outs] == [f.shape for f in feats]


# ----------------------------------------------------------------- model
def _samples(n, size=64, ori=(50, 70)):
    out = []
    for _ in range(n):
        s = DetDataSample()
        s.set_metainfo(dict(img_shape=(size, size), ori_shape=ori,
                            pad_shape=(size, size)))
        s.gt_instances = InstanceData()  # no defect: the normal case
        out.append(s)
    return out


def test_loss_and_predict_contract(model):
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    model.train()
    losses = model.loss(x, _samples(2))
    assert set(losses) == {'loss_rd', 'loss_offset', 'loss_smooth',
                           'loss_inverse'}
    for v in losses.values():
        assert v.ndim == 0 and torch.isfinite(v)
    assert 0 < float(losses['loss_rd']) <= 6  # 3 levels of (1 - cos)
    model.eval()
    preds = model.predict(x, _samples(2))
    for p in preds:
        assert p.pred_score_map.data.shape == (1, 50, 70)
        assert p.pred_score_map.data.dtype == torch.float32
        assert 0 <= float(p.pred_score_map.data.min())
        assert float(p.pred_score_map.data.max()) <= 1
        assert 0 <= p.pred_image_score <= 1
        assert p.pred_image_label in (0, -1)
    maps, image = model.anomaly_maps(x)
    rd, mag = model.score_terms(x)
    assert torch.allclose(maps, rd + 0.05 * mag)
    assert float(rd.max()) <= 1 and float(mag.max()) <= 1
    assert image.shape == (2, )
    with pytest.raises(ValueError, match='divisible by 32'):
        model.anomaly_maps(torch.zeros(1, 3, 48, 48))


def test_gradients_only_reach_trainable_parts(model):
    model.train()
    model.zero_grad()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    sum(model.loss(x, None).values()).backward()
    for p in model.teacher.parameters():
        assert not p.requires_grad and p.grad is None
    for part in (model.deformation, model.bottleneck, model.decoder):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads)
        assert any(float(g.abs().sum()) > 0 for g in grads)
    assert not model.teacher.training
    assert not any(k.startswith('teacher.') for k in model.state_dict())
    # the distillation loss alone reaches the pre-deformation net through
    # the frozen teacher (the deformation is trained by it, officially too)
    model.zero_grad()
    model.loss(x, None)['loss_rd'].backward()
    heads = [p.grad for p in model.deformation.heads['fine'].parameters()]
    assert any(g is not None and float(g.abs().sum()) > 0 for g in heads)
    for p in model.teacher.parameters():
        assert p.grad is None
    model.zero_grad()


def test_vq_mode_adds_the_codebook_loss():
    m = tiny(use_vq=True, num_codes=16)
    book = m.bottleneck.vq.codebook
    assert book.shape == (16, 256)
    assert float(book.abs().max()) <= 1 / 16
    losses = m.loss(torch.rand(2, 3, 64, 64) * 2 - 1, None)
    assert float(losses['loss_vq']) > 0
    losses['loss_vq'].backward()
    assert book.grad is not None and float(book.grad.abs().sum()) > 0


def test_random_teacher_must_be_declared():
    with pytest.raises(FrozenWeightsUnavailable,
                       match='allow_random_frozen'):
        ReverseDistillationPPDM(teacher_arch='resnet18',
                                decoder_layers=(1, 1, 1))
    a, b = tiny(), tiny()
    src = a.frozen_sources()['teacher']
    assert src['kind'] == 'random' and src['seed'] == 0
    assert src['model'] == 'resnet18'
    for pa, pb in zip(a.teacher.parameters(), b.teacher.parameters()):
        assert torch.equal(pa, pb)  # seeded: same random teacher


def test_teacher_from_a_local_file_is_recorded(tmp_path):
    import torchvision
    torch.manual_seed(3)
    net = torchvision.models.resnet18(weights=None)
    path = tmp_path / 'r18.pth'
    torch.save(net.state_dict(), path)
    m = tiny(teacher_checkpoint=str(path), allow_random_frozen=False)
    src = m.frozen_sources()['teacher']
    assert src['kind'] == 'file'
    assert src['sha256'] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert torch.equal(m.teacher.stages['layer3'][0].conv1.weight,
                       net.layer3[0].conv1.weight)
    with pytest.raises(FileNotFoundError, match='not found'):
        tiny(teacher_checkpoint=str(tmp_path / 'missing.pth'))


@pytest.mark.real_data
def test_trains_and_scores_real_images(mt_data):
    from .test_anomaly_baselines import check_predictions
    torch.manual_seed(0)
    m = tiny()
    params = [p for p in m.parameters() if p.requires_grad]
    optim = OptimWrapper(torch.optim.AdamW(params, lr=0.005,
                                           betas=(0.5, 0.999)))
    m.train()
    batch = make_batch(mt_data['normals'][:3])
    losses = [float(m.train_step(batch, optim)['loss']) for _ in range(5)]
    assert losses[-1] < losses[0]
    check_predictions(m, mt_data)
