# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Tests that would catch a broken anomaly method: on real Magnetic Tile
images every baseline that can be checked offline must localise defects
clearly better than chance, and an exactly inverted score map must fail
the same check.

**One criterion for every baseline, declared before measuring:** the pooled
P-AUROC (:func:`pixel_auroc`: exact AUROC over all pixels of all test
images at their original size, the metric the tables print) reaches
``P_AUROC_BAR`` = 0.6 (chance 0.5), and ``1 - map`` does not. The
per-image P-AUROC (:func:`per_image_pixel_auroc`) is printed by
:func:`main` as information only; it never decides a test.

Offline there are no pretrained backbones (ImageNet ResNet / ViT, CLIP), so
each baseline runs with what an offline machine has: frozen random-init
backbones (seeded) for the feature-based methods and a few hundred CPU
training steps for the methods trained from scratch. Every image of the
fixture goes through :class:`NormalizeExposure` (grey mean 128, std 32;
since 2026-12-01 14:02 UTC, for every baseline alike): random-init
networks are not invariant to Magnetic Tile's exposure differences, which
was the measured cause of several failures (README). A baseline is checked
when its offline setting clears the bar on each of seeds 0-3 and, on seed
0, with ``ATEN_CPU_CAPABILITY=avx2`` and ``=default`` (this rule replaced a
seeds-0-and-1 rule at 14:22 UTC, after seeds 2 and 3 failed two baselines
that rule had admitted; seeds 4 and 5 were run afterwards as a confirmation
and are reported, whatever they gave). A baseline that does not is listed in
``UNCHECKED`` with the reason and measured by :func:`main` only; the values
and reasons are in ``configs/baselines/anomaly/README.md`` ("Tests that
catch a broken method").

CI-sized fixture (64-px inputs): the first 32 ``MT_Free`` images fit;
the test set is 8 defective images per class (blowhole, crack, break,
fray; sorted ``[1:9]``, ``[0]`` is the contract tests') and the next 16
``MT_Free`` images. Sized so that no test image carries more than ~31 % of
the defect pixels (the earlier 12-image fixture had one fray image with
90 % of them: the pooled value measured that one image).
"""
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest
import torch
from mmengine.optim import OptimWrapper

from imdd_mm.datasets.transforms import NormalizeExposure
from imdd_mm.evaluation.functional.ranking import auroc_exact
from imdd_mm.models.anomaly import (CLIPPromptAD, DiffusionReconstructionAD,
                                    DiversityMeasurableAD,
                                    FrequencyRestorationAD, MutualScoring,
                                    PatchCore, ReverseDistillationPPDM,
                                    SimpleNet)
from .conftest import _load, make_batch
from .test_anomaly_baselines import TINY_CLIP, TINY_UNET, TINY_VIT

#: P-AUROC every baseline must reach on the fixture (chance = 0.5).
P_AUROC_BAR = 0.6
SIZE = 64
DEFECTS = ('MT_Blowhole', 'MT_Crack', 'MT_Break', 'MT_Fray')
NUM_FIT = 32  # MT_Free[:32] fit
TEST_PER_CLASS = slice(1, 9)  # 8 defective images per class
NUM_TEST_NORMAL = 16  # MT_Free[32:48]


def load_quality_data(root, exposure: bool = True) -> dict:
    """The fixture's images (see the module docstring) from ``root``, each
    through :class:`NormalizeExposure` (defaults) unless ``exposure`` is
    False (the setting measured before 2026-12-01 14:02 UTC)."""
    import cv2
    norm = NormalizeExposure().transform if exposure else None
    free = sorted((root / 'MT_Free' / 'Imgs').glob('*.jpg'))
    normals = [(p, *_load(p, SIZE, norm)) for p in free[:NUM_FIT]]
    test, masks = [], []
    for cls in DEFECTS:
        for p in sorted((root / cls / 'Imgs').glob('*.jpg'))[TEST_PER_CLASS]:
            test.append((p, *_load(p, SIZE, norm)))
            masks.append(cv2.imread(str(p.with_suffix('.png')),
                                    cv2.IMREAD_GRAYSCALE) > 127)
    for p in free[NUM_FIT:NUM_FIT + NUM_TEST_NORMAL]:
        item = (p, *_load(p, SIZE, norm))
        test.append(item)
        masks.append(np.zeros(item[2], bool))
    return dict(normals=normals, test=test, masks=masks)


@pytest.fixture(scope='module')
def quality_data(magnetic_tile_root):
    return load_quality_data(magnetic_tile_root)


def pixel_auroc(maps: List[np.ndarray], masks: List[np.ndarray]) -> float:
    """The criterion: exact pooled P-AUROC over the pixels of all test
    images (original size)."""
    return auroc_exact(np.concatenate([m.ravel() for m in maps]),
                       np.concatenate([m.ravel() for m in masks]))


def per_image_pixel_auroc(maps: List[np.ndarray],
                          masks: List[np.ndarray]) -> float:
    """Information only (never a pass criterion): mean over the defective
    images of each image's own pixel AUROC (localisation inside an image;
    blind to score offsets between images)."""
    return float(np.mean([auroc_exact(m, k) for m, k in zip(maps, masks)
                          if k.any()]))


def beats_chance(maps: List[np.ndarray], masks: List[np.ndarray],
                 bar: float = P_AUROC_BAR) -> bool:
    """The check: the pooled P-AUROC of the maps reaches ``bar``."""
    return pixel_auroc(maps, masks) >= bar


def predict_maps(model, data) -> List[np.ndarray]:
    model.eval()
    with torch.no_grad():
        samples = model.test_step(make_batch(data['test'], SIZE))
    return [s.pred_score_map.data[0].numpy() for s in samples]


def fit_memory(model, data, batch_size: int = 5) -> None:
    model.train()
    normals = data['normals']
    for i in range(0, len(normals), batch_size):
        model.train_step(make_batch(normals[i:i + batch_size], SIZE), None)
    model.finalize_fit()


def train(model, data, steps: int, lr: Optional[float] = None,
          batch_size: int = 5,
          optim_wrapper: Optional[dict] = None) -> None:
    """``steps`` seeded mini-batches of the fitting images; Adam at ``lr``
    unless ``optim_wrapper`` (an mmengine optim-wrapper config, e.g. the
    method's own schedule) is given."""
    if optim_wrapper is not None:
        from mmengine.optim import build_optim_wrapper
        optim = build_optim_wrapper(model, optim_wrapper)
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        optim = OptimWrapper(torch.optim.Adam(params, lr=lr))
    model.train()
    normals = data['normals']
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randperm(len(normals), generator=gen)[:batch_size]
        model.train_step(make_batch([normals[int(i)] for i in idx], SIZE),
                         optim)


# ------------------------------------------------------------- baselines
def run_patchcore(data):
    model = PatchCore(
        backbone=dict(arch='resnet18', layers=('layer1', 'layer2'),
                      pretrain_embed_dim=128, embed_dim=128),
        coreset_ratio=0.25, fit_progress=False)
    fit_memory(model, data)
    return predict_maps(model, data)


def simplenet_schedule() -> dict:
    """SimpleNet's own optimiser (the configs' schedule: AdamW 1e-4 for the
    adaptor, 2e-4 for the discriminator, weight decay 1e-5)."""
    from mmengine.config import Config
    root = Path(__file__).resolve().parents[3]
    return Config.fromfile(str(
        root / 'configs/baselines/anomaly/_base_/schedules/adamw_150e.py')
    ).optim_wrapper.to_dict()


def run_simplenet(data):
    model = SimpleNet(
        backbone=dict(arch='resnet18', pretrain_embed_dim=128,
                      embed_dim=128), hidden_dim=64, seed=0)
    train(model, data, steps=300, optim_wrapper=simplenet_schedule())
    return predict_maps(model, data)


def run_musc(data):
    model = MutualScoring(backbone=TINY_VIT, aggregation_degrees=(1, 3))
    model.score_set([make_batch(data['test'], SIZE)])
    return predict_maps(model, data)


def run_winclip_few_shot(data):
    model = CLIPPromptAD(model_cfg=TINY_CLIP, few_shot=True,
                         memory_layers=(0, 1), object_name='magnetic tile')
    fit_memory(model, data)
    return predict_maps(model, data)


def run_promptad(data):
    model = CLIPPromptAD(model_cfg=TINY_CLIP, few_shot=True,
                         learnable_prompts=True, n_ctx=4,
                         memory_layers=(0, 1), object_name='magnetic tile')
    train(model, data, steps=5, lr=1e-2)
    model.finalize_fit()
    return predict_maps(model, data)


def run_ddad(data):
    """DDAD trains its denoiser from scratch on each category's normal
    images, so only the feature extractor is random here. The model's
    default test noise level (t = 250) with 2 DDIM steps (5 in the
    configs) and 600 Adam steps (the most a CI test could spend)."""
    model = DiffusionReconstructionAD(
        unet=TINY_UNET,
        feature_extractor=dict(arch='resnet18', layers=('layer1', 'layer2')),
        test_timestep=250, num_inference_steps=2)
    train(model, data, steps=600, lr=1e-3)
    return predict_maps(model, data)


def run_dmad(data):
    model = DiversityMeasurableAD(channels=8, latent_dim=16,
                                  num_prototypes=32, pdm_channels=8)
    train(model, data, steps=120, lr=3e-3)
    return predict_maps(model, data)


def run_dmad_ppdm(data):
    """DMAD-PPDM-style with a random ResNet-18 teacher (the global RNG,
    seeded by the caller), RD's BasicBlock bottleneck and decoder cut to
    one block per stage, an 8-wide pre-deformation net and the official
    optimiser (AdamW 0.005, betas (0.5, 0.999)), 200 steps."""
    model = ReverseDistillationPPDM(
        teacher_arch='resnet18', allow_random_frozen=True,
        decoder_layers=(1, 1, 1), bottleneck_blocks=1, offset_channels=8)
    train(model, data, steps=200, optim_wrapper=dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=0.005, betas=(0.5, 0.999))))
    return predict_maps(model, data)


def run_fair(data):
    """FAIR trains its restorer from scratch: 800 Adam steps of 5 images
    (125 epochs of the 32 fitting images; FAIR's schedule is 800 epochs),
    the model's own synthetic anomalies and rotations. 120 and 400 steps
    stay below the bar on some seeds (README)."""
    model = FrequencyRestorationAD(base_channels=16, num_stages=4,
                                   mean_filter_size=5)  # 21 at 256 px
    train(model, data, steps=800, lr=1e-3)
    return predict_maps(model, data)


#: Checked: the offline setting clears the bar on seeds 0-3, and on
#: seed 0 with every CPU kernel set tried (native, ATEN_CPU_CAPABILITY=avx2
#: and default); values in the README.
BASELINES: Dict[str, Callable] = {
    'PatchCore': run_patchcore,
    'MuSc-style': run_musc,
    'PromptAD-style': run_promptad,
    'FAIR-style': run_fair,
    'DMAD-PPDM-style': run_dmad_ppdm,
}
#: Not checkable offline: name -> (run, why). Measured by ``main`` only
#: (README table); their contracts are tested in test_anomaly_baselines.py.
UNCHECKED: Dict[str, Tuple[Callable, str]] = {
    'WinCLIP+-style (few-shot)': (
        run_winclip_few_shot,
        'half of its map is the zero-shot map of a random CLIP (no '
        'information); pooled 0.52-0.62 on seeds 0-3'),
    'DMAD-style': (
        run_dmad,
        'pooled 0.51-0.63 on seeds 0-3 at 120 steps; exploratory 400- and '
        '1000-step runs were not above the bar on both seeds 0 and 1'),
    'DDAD-style': (
        run_ddad,
        'pooled 0.65 / 0.63 / 0.61 / 0.58 on seeds 0-3 at 600 steps and '
        '0.60 / 0.56 at 1200 (per-image 0.80-0.83): the tiny denoiser\'s '
        'error levels are not comparable across images'),
    'SimpleNet': (
        run_simplenet,
        'with random features the discriminator learns the Gaussian '
        'perturbations but real defects do not look like them (pooled '
        '0.46-0.58 on seeds 0-3)'),
}
#: Not checked at all: zero-shot WinCLIP-style with random CLIP weights has
#: prompts without information (contract only, test_anomaly_baselines.py).

SLOW = ('FAIR-style', 'DMAD-PPDM-style')  # > 20 s on 2 idle cores


@pytest.mark.real_data
@pytest.mark.parametrize('name', [
    pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
    for n in BASELINES
])
def test_baseline_beats_chance_and_inverted_map_fails(name, quality_data):
    torch.manual_seed(0)
    maps = BASELINES[name](quality_data)
    masks = quality_data['masks']
    value = pixel_auroc(maps, masks)
    assert beats_chance(maps, masks), f'{name}: pooled P-AUROC {value:.3f}'
    inverted = [1.0 - m for m in maps]
    assert not beats_chance(inverted, masks)
    assert pixel_auroc(inverted, masks) == pytest.approx(1.0 - value,
                                                         abs=1e-6)


def test_fixture_spreads_the_defect_pixels(quality_data):
    """The fixture's declared property: no test image carries more than a
    third of the defect pixels (the pooled value is not one image's)."""
    pos = np.array([m.sum() for m in quality_data['masks']], float)
    assert len(pos) == 4 * 8 + NUM_TEST_NORMAL
    assert pos.max() / pos.sum() < 1 / 3


def test_check_rejects_chance_maps():
    """The check itself: constant and random maps do not pass, perfect
    maps do."""
    rng = np.random.default_rng(0)
    masks = [rng.random((20, 20)) < 0.1 for _ in range(4)]
    assert not beats_chance([np.zeros((20, 20)) for _ in masks], masks)
    assert not beats_chance([rng.random((20, 20)) for _ in masks], masks)
    assert beats_chance([m.astype(float) for m in masks], masks)


def test_simplenet_scores_synthetic_anomalies_higher():
    """SimpleNet offline (random features invert its Magnetic Tile maps,
    see the README): with features given directly (identity backbone) on
    a low-dimensional normal manifold, training with the model's own loss
    must make ``anomaly_maps`` rank off-manifold (noise-perturbed) features
    above normal ones: the sign and the loss are what SimpleNet asks (a
    flipped sign gives AUROC ~0.02; measured 0.98)."""
    torch.manual_seed(0)
    model = SimpleNet(backbone=dict(arch='resnet18', pretrain_embed_dim=32,
                                    embed_dim=32), hidden_dim=32, seed=0,
                      noise_std=0.3)
    model.backbone = torch.nn.Identity()
    basis = torch.randn(4, 32)

    def normal_feats(n):  # (n, 32, 4, 4) on a 4-d subspace
        return (torch.randn(n * 16, 4) @ basis).view(n, 4, 4, 32).permute(
            0, 3, 1, 2)

    params = list(model.adaptor.parameters()) + list(
        model.discriminator.parameters())
    optim = torch.optim.Adam(params, lr=1e-3)
    model.train()
    for _ in range(300):
        losses = model.loss(normal_feats(16), None)
        loss = losses['loss_normal'] + losses['loss_anomalous']
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()
    clean = normal_feats(8)
    noisy = clean + 0.3 * torch.randn(clean.shape)
    with torch.no_grad():
        s_clean = model.anomaly_maps(clean)[0].flatten().numpy()
        s_noisy = model.anomaly_maps(noisy)[0].flatten().numpy()
    labels = np.r_[np.zeros(s_clean.size), np.ones(s_noisy.size)]
    assert auroc_exact(np.r_[s_clean, s_noisy], labels) > 0.9


def main() -> None:
    """Print the pooled P-AUROC (the criterion) and, for information, the
    per-image P-AUROC of every baseline (the README table):
    ``python -m tests.test_models.test_anomaly.test_anomaly_quality
    [NAME ...] [--seeds 0 1] [--raw-exposure]`` (the test uses seed 0;
    ``--raw-exposure`` skips :class:`NormalizeExposure`)."""
    import argparse
    import time
    from tests.conftest import SHARED_DATA
    runs = dict(BASELINES)
    runs.update({n: r for n, (r, _) in UNCHECKED.items()})
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument('names', nargs='*', metavar='NAME',
                        help='default: all of ' + ', '.join(runs))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--raw-exposure', action='store_true')
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(runs))
    if unknown:
        parser.error(f'unknown baseline(s) {unknown}; known: {list(runs)}')
    torch.set_num_threads(1)
    data = load_quality_data(SHARED_DATA / 'magnetic_tile',
                             exposure=not args.raw_exposure)
    for name in args.names or list(runs):
        for seed in args.seeds:
            torch.manual_seed(seed)
            start = time.perf_counter()
            maps = runs[name](data)
            took = time.perf_counter() - start
            print(f'| {name} | seed {seed} | '
                  f'{pixel_auroc(maps, data["masks"]):.3f} | '
                  f'{per_image_pixel_auroc(maps, data["masks"]):.3f} | '
                  f'{"checked" if name in BASELINES else "not checked"} | '
                  f'{took:.1f} s |', flush=True)


if __name__ == '__main__':
    main()
