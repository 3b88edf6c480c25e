# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""tools/analysis_tools: get_flops, benchmark, analyze_logs,
confusion_matrix and analyze_results on the tiny model / a tiny dataset.

Expected values (confusion counts, per-image IoUs, mean iteration time) are
computed here independently from the fixtures, not taken from the tools.
"""
import importlib.util
import json

import cv2
import numpy as np
import pytest
import torch

from ._runner import REPO_ROOT

TINY = REPO_ROOT / 'configs' / 'imdd' / 'tiny' / 'stage2_tiny.py'
CLASSES = ('scratch', 'crack', 'stain')
H, W = 32, 40


def _load(name):
    spec = importlib.util.spec_from_file_location(
        f'imdd_tool_{name}', REPO_ROOT / 'tools' / 'analysis_tools' /
        f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rect(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


# image -> list of (category name, mask); 'c' is defect-free
GT = {
    'a': [('scratch', _rect(4, 12, 4, 20))],
    'b': [('crack', _rect(10, 20, 10, 30))],
    'c': [],
    # two classes: stain covers more pixels than scratch
    'd': [('scratch', _rect(0, 3, 0, 5)), ('stain', _rect(12, 30, 8, 36))],
}


@pytest.fixture(scope='module')
def tiny_set(tmp_path_factory):
    """4 images, a COCO file in the converters' format, a config."""
    root = tmp_path_factory.mktemp('analysis')
    (root / 'images').mkdir()
    cats = [dict(id=i + 1, name=n, supercategory='defect')
            for i, n in enumerate(CLASSES)]
    images, anns = [], []
    rng = np.random.default_rng(0)
    for i, (name, objs) in enumerate(GT.items()):
        cv2.imwrite(str(root / 'images' / f'{name}.png'),
                    rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        images.append(dict(id=i, file_name=f'{name}.png', width=W, height=H,
                           is_normal=not objs, image_label=None))
        for cls, m in objs:
            ys, xs = np.nonzero(m)
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            anns.append(dict(
                id=len(anns) + 1, image_id=i,
                category_id=CLASSES.index(cls) + 1, iscrowd=0,
                area=int(m.sum()),
                bbox=[int(x0), int(y0), int(x1 - x0), int(y1 - y0)],
                segmentation=[[int(x0), int(y0), int(x1), int(y0), int(x1),
                               int(y1), int(x0), int(y1)]]))
    (root / 'val.json').write_text(
        json.dumps(dict(images=images, annotations=anns, categories=cats)))
    cfg = root / 'config.py'
    cfg.write_text(f"""_base_ = ['{TINY}']
test_dataloader = dict(dataset=dict(
    data_root='{root}/', ann_file='val.json', data_prefix=dict(img='images/'),
    metainfo=dict(classes={CLASSES!r})))
""")
    return root, cfg


# prediction per image: (semantic map, image label)
PRED = {
    'a': (_rect(4, 12, 4, 20).astype(int) * 1, 0),  # exact, right class
    'b': (_rect(15, 25, 10, 30).astype(int) * 3, 2),  # half, wrong class
    'c': (np.zeros((H, W), int), -1),  # normal, right
    'd': (np.zeros((H, W), int), -1),  # missed
}


@pytest.fixture(scope='module')
def results_pkl(tiny_set):
    import mmengine
    from mmdet.structures import DetDataSample
    from mmengine.structures import PixelData
    root, _ = tiny_set
    out = []
    for i, (name, (sem, label)) in enumerate(PRED.items()):
        s = DetDataSample(metainfo=dict(img_id=i, img_path=str(
            root / 'images' / f'{name}.png'), ori_shape=(H, W)))
        s.pred_sem_seg = PixelData(sem_seg=torch.from_numpy(sem)[None])
        s.pred_score_map = PixelData(
            data=torch.from_numpy((sem > 0).astype(np.float32))[None])
        s.pred_image_label = label
        out.append(s.to_dict())
    path = root / 'results.pkl'
    mmengine.dump(out, str(path))
    return path


def test_confusion_matrix(tiny_set, results_pkl, tmp_path):
    _, cfg = tiny_set
    info = _load('confusion_matrix').main(
        [str(cfg), str(results_pkl), str(tmp_path)])
    # rows: true scratch, crack, stain, normal; columns: predicted
    expected = np.zeros((4, 4), int)
    expected[0, 0] += 1  # a
    expected[1, 2] += 1  # b: crack predicted stain
    expected[3, 3] += 1  # c
    expected[2, 3] += 1  # d: stain (largest) predicted normal
    assert info['classes'] == list(CLASSES) + ['normal']
    assert np.array_equal(np.array(info['matrix']), expected)
    assert info['accuracy'] == pytest.approx(2 / 4)
    assert info['recall']['crack'] == 0.0 and info['precision']['stain'] == 0
    assert (tmp_path / 'confusion_matrix.png').stat().st_size > 1000


def test_analyze_results_ranks_by_iou(tiny_set, results_pkl, tmp_path):
    _, cfg = tiny_set
    _load('analyze_results').main(
        [str(cfg), str(results_pkl), str(tmp_path), '--topk', '2'])
    got = json.loads((tmp_path / 'per_image_iou.json').read_text())
    gt_b, pr_b = GT['b'][0][1], PRED['b'][0] > 0
    iou_b = (gt_b & pr_b).sum() / (gt_b | pr_b).sum()
    expected = {'a': 1.0, 'b': iou_b, 'c': 1.0, 'd': 0.0}
    assert [r['img_path'].rsplit('/', 1)[1][0] for r in got] == \
        ['d', 'b', 'a', 'c']  # worst first, ties by path
    for r in got:
        assert r['iou'] == pytest.approx(
            expected[r['img_path'].rsplit('/', 1)[1][0]])
    assert len(list((tmp_path / 'bad').glob('*.png'))) == 2
    good = sorted((tmp_path / 'good').glob('*.png'))
    assert len(good) == 2 and 'iou1.000' in good[0].name
    panel = cv2.imread(str(good[0]))
    assert panel.shape == (H, 3 * W, 3)


def test_results_from_another_dataset_are_refused(tiny_set, tmp_path):
    import mmengine
    _, cfg = tiny_set
    bad = tmp_path / 'other.pkl'
    mmengine.dump([dict(img_path='/elsewhere/x.png', pred_image_label=0)],
                  str(bad))
    with pytest.raises(KeyError, match='/elsewhere/x.png'):
        _load('confusion_matrix').main([str(cfg), str(bad), str(tmp_path)])


def _write_log(path):
    lines = [
        dict(lr=1e-4, loss=2.0, loss_mask=1.0, time=3.0, iter=1, step=1),
        dict(lr=1e-4, loss=1.5, loss_mask=0.8, time=0.5, iter=2, step=2),
        dict(lr=1e-4, loss=1.0, loss_mask=0.6, time=0.7, iter=3, step=3),
        {'imdd/seg/iou': 0.25, 'step': 3},
        dict(lr=1e-4, loss=0.8, loss_mask=0.5, time=0.6, iter=4, step=4),
    ]
    path.write_text('\n'.join(json.dumps(x) for x in lines) + '\n')
    return lines


def test_analyze_logs(tmp_path, capsys):
    tool = _load('analyze_logs')
    log = tmp_path / 'scalars.json'
    lines = _write_log(log)
    t = tool.train_time(tool.load_json_log(str(log)))
    times = [x['time'] for x in lines if 'time' in x][1:]  # start-up out
    assert t['mean'] == pytest.approx(sum(times) / len(times))
    assert t['slowest'] == 0.7 and t['fastest'] == 0.5
    assert tool.train_time(tool.load_json_log(str(log)),
                           include_outliers=True)['slowest'] == 3.0
    tool.main(['cal_train_time', str(log)])
    assert 'average iter time: 0.6000 s/iter' in capsys.readouterr().out
    png = tmp_path / 'curve.png'
    tool.main(['plot_curve', str(log), '--keys', 'loss', 'imdd/seg/iou',
               '--out', str(png)])
    assert png.read_bytes()[:4] == b'\x89PNG'
    curves = tool.curves({str(log): tool.load_json_log(str(log))},
                         ['loss', 'imdd/seg/iou'])[str(log)]
    assert curves['loss'] == ([1, 2, 3, 4], [2.0, 1.5, 1.0, 0.8])
    assert curves['imdd/seg/iou'] == ([3], [0.25])
    with pytest.raises(SystemExit, match="scalars.json: no key 'loss_cls'"):
        tool.main(['plot_curve', str(log), '--keys', 'loss_cls'])


def test_get_flops_parts(capsys):
    tool = _load('get_flops')
    small = {r['part']: r for r in tool.main([str(TINY), '--shape', '64'])}
    big = {r['part']: r for r in tool.main([str(TINY), '--shape', '128'])}
    vae = 'VAE encoder (frozen)'
    # convolutions: FLOPs grow with the pixel count (x4), params do not
    assert 3.9 < big[vae]['flops'] / small[vae]['flops'] < 4.1
    assert big[vae]['params'] == small[vae]['params']
    from imdd_mm.testing import build_from_config
    model = build_from_config(TINY)
    unet = sum(p.numel() for p in model.backbone.unet.parameters())
    head = sum(p.numel() for p in model.panoptic_head.parameters())
    assert small['U-Net taps (frozen)']['params'] == unet
    assert small['OV Mask2Former head']['params'] == head
    per_image = [r for r in small.values()
                 if r['per_image'] and r['part'] != 'total per image']
    assert small['total per image']['flops'] == sum(r['flops']
                                                    for r in per_image)
    assert all(r['flops'] > 0 for r in per_image)
    assert 'GFLOPs' in capsys.readouterr().out


def test_benchmark_synthetic_and_dataset(tiny_set, capsys):
    tool = _load('benchmark')
    fps = tool.main([str(TINY), '--synthetic', '64', '--max-iter', '2',
                     '--num-warmup', '1', '--log-interval', '1',
                     '--repeat-num', '2', '--device', 'cpu'])
    assert len(fps) == 2 and all(f > 0 for f in fps)
    out = capsys.readouterr().out
    assert 'random weights' in out and 'Mean overall fps' in out
    _, cfg = tiny_set
    fps = tool.main([str(cfg), '--max-iter', '3', '--num-warmup', '1',
                     '--log-interval', '3', '--device', 'cpu'])
    assert fps[0] > 0
    assert 'Done batch [3   / 3]' in capsys.readouterr().out
