# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""tools/generate.py and tools/misc/export_diffusers.py end to end (in
process, tiny Stage-1 model, checkpoint in mmengine's EMAHook layout)."""
import imdd_mm  # noqa: F401,I001

import importlib.util
import json

import cv2
import pytest
import torch

from imdd_mm.utils import register_all_modules
from ..test_models.test_pretrainers.stage1_utils import (TINY_CFG,
                                                         build_tiny_pretrainer,
                                                         tiny_stage1_cfg)
from ._runner import REPO_ROOT


def _load_tool(rel):
    spec = importlib.util.spec_from_file_location(
        rel.replace('/', '_')[:-3], REPO_ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def stage1_ckpt(tmp_path_factory):
    """A checkpoint laid out like mmengine's EMAHook writes it: EMA weights
    in ``state_dict``, online ones in ``ema_state_dict['module.*']``."""
    register_all_modules()
    torch.manual_seed(0)
    model = build_tiny_pretrainer()
    online = {k: v.clone() for k, v in model.state_dict().items()}
    ema = {k: v + 0.01 * torch.randn_like(v) for k, v in online.items()}
    ckpt = dict(
        meta=dict(cfg=tiny_stage1_cfg().pretty_text, iter=10),
        state_dict=ema,
        ema_state_dict=dict(
            steps=torch.tensor(10),
            **{f'module.{k}': v for k, v in online.items()}))
    path = tmp_path_factory.mktemp('ckpt') / 'iter_10.pth'
    torch.save(ckpt, path)
    return path, ema, online


def _argv(ckpt, out, *extra):
    return [str(TINY_CFG), str(ckpt), '--prompt', 'tile with a crack',
            '--prompt', 'steel strip with scratches', '--num', '2',
            '--out', str(out), '--seed', '5', '--steps', '3',
            '--height', '64', '--width', '64', '--batch-size', '3',
            '--device', 'cpu', *extra]


def test_generate_writes_images_and_manifest(stage1_ckpt, tmp_path):
    tool = _load_tool('tools/generate.py')
    ckpt, _, _ = stage1_ckpt
    out = tmp_path / 'gen'
    manifest = tool.main(_argv(ckpt, out, '--guidance', '3.0'))
    files = sorted(p.name for p in out.glob('*.png'))
    assert files == [f'{i:06d}.png' for i in range(4)]
    saved = json.loads((out / 'generation.json').read_text())
    assert saved == json.loads(json.dumps(manifest, default=str))
    assert [im['seed'] for im in saved['images']] == [5, 6, 7, 8]
    assert [im['prompt'] for im in saved['images']] == \
        ['tile with a crack'] * 2 + ['steel strip with scratches'] * 2
    s = saved['settings']
    assert (s['guidance_scale'], s['num_inference_steps'], s['scheduler'],
            s['ema']) == (3.0, 3, 'ddim', True)
    img = cv2.imread(str(out / '000003.png'))
    assert img.shape == (64, 64, 3)
    # a rerun (other batch size, prompt file) reproduces the same files
    pf = tmp_path / 'prompts.txt'
    pf.write_text('# defects\ntile with a crack\n\nsteel strip with '
                  'scratches\n')
    out2 = tmp_path / 'gen2'
    argv = _argv(ckpt, out2, '--guidance', '3.0')
    argv = argv[:2] + ['--prompt-file', str(pf)] + argv[6:]
    argv[argv.index('--batch-size') + 1] = '4'
    tool.main(argv)
    for name in files:
        a = cv2.imread(str(out / name)).astype(int)
        b = cv2.imread(str(out2 / name)).astype(int)
        assert abs(a - b).max() <= 1
    # the online weights give other images
    out3 = tmp_path / 'gen3'
    tool.main(_argv(ckpt, out3, '--guidance', '3.0', '--no-ema'))
    assert not (cv2.imread(str(out3 / '000000.png')) ==
                cv2.imread(str(out / '000000.png'))).all()


def test_generate_errors(stage1_ckpt, tmp_path):
    tool = _load_tool('tools/generate.py')
    ckpt, _, _ = stage1_ckpt
    with pytest.raises(SystemExit):
        tool.main([str(TINY_CFG), str(ckpt), '--out', str(tmp_path)])
    with pytest.raises(FileNotFoundError, match='nothere.pth'):
        tool.main(_argv(tmp_path / 'nothere.pth', tmp_path / 'o'))


def test_export_diffusers_tool(stage1_ckpt, tmp_path):
    from diffusers import UNet2DConditionModel
    tool = _load_tool('tools/misc/export_diffusers.py')
    ckpt, ema, online = stage1_ckpt
    out = tmp_path / 'export'
    tool.main([str(ckpt), str(out)])  # config from the checkpoint meta
    unet = UNet2DConditionModel.from_pretrained(str(out / 'unet'))
    assert torch.equal(unet.conv_in.weight, ema['unet.conv_in.weight'])
    meta = json.loads((out / 'imdd_stage1.json').read_text())
    assert meta['ema'] is True and meta['has_captioner_mlp']
    mlp = torch.load(out / 'captioner_mlp.pth', weights_only=True)
    assert torch.equal(mlp['0.weight'], ema['captioner.mlp.0.weight'])
    tool.main([str(ckpt), str(out), '--no-ema', '--no-vae', '--overwrite'])
    unet = UNet2DConditionModel.from_pretrained(str(out / 'unet'))
    assert torch.equal(unet.conv_in.weight, online['unet.conv_in.weight'])
    assert not (out / 'vae').exists()


def test_generate_reports_fid_and_is(stage1_ckpt, tmp_path):
    from ..test_generation.inception_utils import save_random_inception
    tool = _load_tool('tools/generate.py')
    ckpt, _, _ = stage1_ckpt
    weights = tmp_path / 'inception.pth'
    save_random_inception(weights)
    out = tmp_path / 'gen'
    argv = _argv(ckpt, out, '--inception-weights', str(weights))
    argv[argv.index('--num') + 1] = '1'
    tool.main(argv)
    real = tmp_path / 'real'
    real.mkdir()
    for p in out.glob('*.png'):  # "real" = the generated images themselves
        (real / p.name).write_bytes(p.read_bytes())
    manifest = tool.main(argv + ['--fid-real', str(real)])
    scores = json.loads((out / 'metrics.json').read_text())
    assert scores['num_generated'] == scores['num_real'] == 2
    assert scores['IS'] >= 1.0
    assert manifest['metrics']['FID'] == scores['FID']
    other = tmp_path / 'other'
    other.mkdir()
    for p in out.glob('*.png'):  # different "real" images: inverted
        cv2.imwrite(str(other / p.name), 255 - cv2.imread(str(p)))
    fid_other = tool.main(argv + ['--fid-real', str(other)])['metrics']['FID']
    assert fid_other > 0
    assert scores['FID'] <= 1e-6 * fid_other  # FID(X, X) ~ 0
    with pytest.raises(SystemExit):
        tool.main(_argv(ckpt, out, '--fid-real', str(real)))
