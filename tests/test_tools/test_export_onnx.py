# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""ONNX export of the Stage-2 head (text embeddings as an input):
onnxruntime on CPU reproduces PyTorch's ``predict`` outputs within 1e-4 for
vocabularies of several sizes; the VAE + U-Net export is checked the same
way. Tiny random model, no training."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ..tiny_stage2 import TINY_STAGE2_CONFIG as CONFIG
from ..tiny_stage2 import build_tiny_stage2

ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def model():
    net = build_tiny_stage2(for_test=True)
    net.set_vocabulary(['scratch', 'crack', 'stain'])
    return net


def test_head_onnx_matches_pytorch(model, tmp_path):
    from mmdet.structures import DetDataSample
    from imdd_mm.deployment import export_head, feature_shapes
    size = (128, 128)
    path = tmp_path / 'head.onnx'
    names = export_head(model, str(path), size, num_names=3)
    assert names == ['feat_s8', 'feat_s16', 'feat_s32', 'feat_s64',
                     'text_embeddings']
    session = ort.InferenceSession(str(path),
                                   providers=['CPUExecutionProvider'])
    shapes = feature_shapes(model, size)
    assert shapes == [(1, 16, 16, 16), (1, 16, 8, 8), (1, 32, 4, 4),
                      (1, 32, 2, 2)]
    gen = torch.Generator().manual_seed(3)
    for vocab in (['dent'], ['scratch', 'crack', 'stain'],
                  ['a', 'b', 'c', 'd', 'e', 'f', 'g']):
        # PyTorch reference: the ordinary path with set_vocabulary
        model.set_vocabulary(vocab)
        feats = [torch.randn(s, generator=gen) for s in shapes]
        meta = dict(batch_input_shape=size, img_shape=size, pad_shape=size)
        with torch.no_grad():
            cls_ref, mask_ref = model.panoptic_head.predict(
                feats, [DetDataSample(metainfo=meta)])
        # the application's side: the encoder's template-averaged names
        text = model.panoptic_head.text_encoder.encode_names(
            vocab, model.panoptic_head.prompt_templates)
        cls_onnx, mask_onnx = session.run(None, dict(zip(
            names, [f.numpy() for f in feats] + [text.numpy()])))
        assert cls_onnx.shape == (1, 10, len(vocab) + 1)
        assert mask_onnx.shape == (1, 10, 128, 128)
        np.testing.assert_allclose(cls_onnx, cls_ref.numpy(), atol=1e-4)
        np.testing.assert_allclose(mask_onnx, mask_ref.numpy(), atol=1e-4)
    model.set_vocabulary(['scratch', 'crack', 'stain'])


def test_vae_unet_onnx_matches_pytorch(model, tmp_path):
    from imdd_mm.deployment import DiffusionFeaturesForExport
    gen = torch.Generator().manual_seed(4)
    img = torch.rand(1, 3, 128, 128, generator=gen) * 2 - 1
    with torch.no_grad():
        cond = model.compute_condition(img)
        wrapper = DiffusionFeaturesForExport(model).eval()
        ref = wrapper(img, cond)
        path = tmp_path / 'vae_unet.onnx'
        torch.onnx.export(wrapper, (img, cond), str(path),
                          input_names=['img', 'cond'], opset_version=17,
                          dynamo=False)
    session = ort.InferenceSession(str(path),
                                   providers=['CPUExecutionProvider'])
    got = session.run(None, dict(img=img.numpy(), cond=cond.numpy()))
    assert len(got) == 4
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-4)
    # the features are the backbone's, not a constant: another image differs
    other = session.run(None, dict(img=(img * 0.5).numpy(),
                                   cond=cond.numpy()))
    assert np.abs(other[0] - got[0]).max() > 1e-3


def test_export_cli(model, tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        'imdd_export_onnx', REPO / 'tools/deployment/export_onnx.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    ckpt = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    out = tmp_path / 'deploy' / 'head.onnx'
    monkeypatch.setattr(sys, 'argv', [
        'export_onnx.py', CONFIG, str(ckpt), '--out', str(out), '--vocab',
        'pit,burr', '--verify'])
    assert tool.main() == 0
    info = json.loads(out.with_suffix('.json').read_text())
    assert info['batch_input_shape'] == [128, 128]
    assert info['vocabulary'] == ['pit', 'burr']
    for check in info['verify'].values():
        assert max(check['max_abs_diff']) < 1e-4
    text = np.load(out.with_suffix('.text_embeddings.npy'))
    assert text.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    assert not list(out.parent.glob('*.tmp'))
