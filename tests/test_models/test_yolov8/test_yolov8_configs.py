# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The YOLOv8 baseline configs parse and build, and the tiny NEU-DET config
trains and evaluates end to end on real NEU-DET images (a COCO file of a
few images is written in ``tmp_path``)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS, TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.config import Config

from .conftest import NEU_CLASSES

CFG_DIR = Path(__file__).resolve().parents[3] / 'configs' / 'baselines' / \
    'yolov8'
PAPER_CONFIGS = sorted(p for p in CFG_DIR.glob('yolov8_*.py'))


def _coco_metric(evaluator):
    evaluators = evaluator if isinstance(evaluator, list) else [evaluator]
    return [e for e in evaluators if e['type'] == 'CocoMetric'][0]


def test_all_configs_present():
    names = {p.stem for p in PAPER_CONFIGS}
    for ds in ('mvtec_ad', 'visa', 'magnetic_tile', 'neu_det'):
        assert f'yolov8_m_{ds}' in names
    assert {'yolov8_n_neu_det', 'yolov8_s_neu_det',
            'yolov8_tiny_neu_det'} <= names


@pytest.mark.parametrize('path', PAPER_CONFIGS, ids=lambda p: p.stem)
def test_config_parses_and_pipelines_build(path):
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports['imports'] == ['imdd_mm']
    assert cfg.default_scope == 'mmdet'
    train = cfg.train_dataloader.dataset
    assert train.type == 'MultiImageMixDataset'
    types = [t['type'] for t in train.pipeline]
    assert types[:3] == ['Mosaic', 'YOLOv8RandomAffine', 'YOLOv8MixUp']
    assert train.pipeline[0]['prob'] == 0.8
    assert train.pipeline[2]['prob'] == 0.15
    assert 'YOLOXHSVRandomAug' in types
    flip = train.pipeline[types.index('RandomFlip')]
    assert flip['prob'] == 0.5
    for t in train.pipeline + cfg.val_dataloader.dataset.pipeline:
        TRANSFORMS.build(t)
    letter = [t for t in cfg.test_dataloader.dataset.pipeline
              if t['type'] == 'LetterResize']
    assert len(letter) == 1 and letter[0]['pad_val'] == 114
    assert 'letterbox_pad' in cfg.test_dataloader.dataset.pipeline[-1][
        'meta_keys']
    head = cfg.model.bbox_head
    assert (head.loss_bbox.loss_weight, head.loss_dfl.loss_weight,
            head.loss_cls.loss_weight) == (7.5, 1.5, 0.5)
    assert cfg.model.train_cfg.assigner.topk == 10
    assert cfg.model.train_cfg.assigner.alpha == 0.5
    assert cfg.model.train_cfg.assigner.beta == 6.0
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.nesterov) == ('SGD', 0.01,
                                                              0.937, True)
    assert opt.weight_decay == 5e-4
    cosine = [s for s in cfg.param_scheduler
              if s['type'] == 'CosineAnnealingLR']
    assert cosine[0]['eta_min_ratio'] == pytest.approx(1e-3)


@pytest.mark.parametrize('name', ['yolov8_m_neu_det', 'yolov8_m_mvtec_ad'])
def test_paper_schedule_and_model(name):
    cfg = Config.fromfile(str(CFG_DIR / f'{name}.py'))
    assert cfg.train_cfg.max_epochs == 300
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    warm = cfg.param_scheduler[0]
    assert (warm['type'], warm['end']) == ('LinearLR', 3)
    assert cfg.train_dataloader.batch_size * 4 == \
        cfg.auto_scale_lr.base_batch_size == 16
    hooks = {h['type']: h for h in cfg.custom_hooks}
    assert hooks['EarlyStoppingHook']['patience'] == 50
    assert [e['type'] for e in cfg.val_evaluator] == [
        'CocoMetric', 'MaskBoxDetectionMetric']
    assert cfg.test_evaluator[1]['box_mode'] == 'mask'
    model = MODELS.build(cfg.model)
    n = sum(p.numel() for p in model.parameters())
    # 25.9M for 80 classes; the head's class branch changes with the classes
    assert 25.0e6 < n < 26.5e6
    assert model.bbox_head.num_classes == cfg.num_classes


@pytest.mark.parametrize('ds', ['mvtec_ad', 'visa', 'magnetic_tile',
                                'neu_det'])
def test_same_files_and_classes_as_our_dataset_configs(ds):
    """Side by side with ours: same COCO files, images and class count
    (MVTec AD / VisA: the 200-per-class split of Table 4, read by YOLOv8
    and by our Stage-2 200-shot configs alike)."""
    ours = CFG_DIR.parents[1] / '_base_' / 'datasets' / f'{ds}.py'
    shots = {'mvtec_ad': 'stage2_mvtec_200shot.py',
             'visa': 'stage2_visa_200shot.py'}
    if ds in shots:
        ours = CFG_DIR.parents[1] / 'imdd' / shots[ds]
    if not ours.is_file():
        pytest.skip(f'{ours} not present')
    ours = Config.fromfile(str(ours))
    yolo = Config.fromfile(str(CFG_DIR / f'yolov8_m_{ds}.py'))
    for split in ('val', 'test'):
        assert _coco_metric(yolo[f'{split}_evaluator']).ann_file == \
            _coco_metric(ours[f'{split}_evaluator']).ann_file
        a, b = yolo[f'{split}_dataloader'].dataset, ours[
            f'{split}_dataloader'].dataset
        assert (a.data_root, a.ann_file, a.data_prefix, a.type) == \
            (b.data_root, b.ann_file, b.data_prefix, b.type)
    a = yolo.train_dataloader.dataset.dataset
    b = ours.train_dataloader.dataset
    assert (a.data_root, a.ann_file, a.data_prefix) == \
        (b.data_root, b.ann_file, b.data_prefix)


def test_num_classes_match_the_converters():
    converters = pytest.importorskip('data_converters.neu_det')
    mt = pytest.importorskip('data_converters.magnetic_tile')
    for ds, conv in (('neu_det', converters.NEUDETConverter),
                     ('magnetic_tile', mt.MagneticTileConverter)):
        cfg = Config.fromfile(str(CFG_DIR / f'yolov8_m_{ds}.py'))
        assert cfg.model.bbox_head.num_classes == len(conv.classes)


def _loaded(boxes, h=120, w=180, seed=0):
    img = np.random.RandomState(seed).randint(0, 255, (h, w, 3)).astype(
        np.uint8)
    return dict(
        img=img, img_shape=(h, w), ori_shape=(h, w),
        gt_bboxes=HorizontalBoxes(
            torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)),
        gt_bboxes_labels=np.zeros(len(boxes), dtype=np.int64),
        gt_ignore_flags=np.zeros(len(boxes), dtype=bool))


@pytest.mark.parametrize('with_boxes', [False, True])
def test_train_pipeline_keeps_defect_free_images(with_boxes):
    """Normal images (no boxes) must pass Mosaic/affine/MixUp/filtering
    (a ``None`` would make MultiImageMixDataset fail)."""
    np.random.seed(1)
    cfg = Config.fromfile(str(CFG_DIR / 'yolov8_tiny_neu_det.py'))
    pipeline = [TRANSFORMS.build(t)
                for t in cfg.train_dataloader.dataset.pipeline]
    boxes = [[10., 20., 90., 80.]] if with_boxes else []
    for trial in range(8):
        results = _loaded(boxes, seed=trial)
        for t in pipeline:
            if hasattr(t, 'get_indexes'):
                n = 3 if type(t).__name__ == 'Mosaic' else 1
                results['mix_results'] = [_loaded(boxes, seed=trial + k + 1)
                                          for k in range(n)]
            results = t(results)
            assert results is not None, type(t).__name__
            results.pop('mix_results', None)
        assert tuple(results['inputs'].shape) == (3, 160, 160)
        gt = results['data_samples'].gt_instances
        if not with_boxes:
            assert len(gt) == 0
        else:
            b = gt.bboxes.tensor
            assert ((b >= 0) & (b <= 160)).all()


def _write_coco(neu_root: Path, out: Path, n_per_class: int = 2) -> Path:
    import xml.etree.ElementTree as ET
    images, anns = [], []
    for c, cls in enumerate(NEU_CLASSES):
        for k in range(1, n_per_class + 1):
            stem = f'{cls}_{k}'
            root = ET.parse(neu_root / 'ANNOTATIONS' / f'{stem}.xml')
            img_id = len(images) + 1
            images.append(dict(id=img_id, file_name=f'IMAGES/{stem}.jpg',
                               width=200, height=200))
            for obj in root.getroot().iter('object'):
                bb = obj.find('bndbox')
                x1, y1, x2, y2 = (float(bb.findtext(t).strip())
                                  for t in ('xmin', 'ymin', 'xmax', 'ymax'))
                anns.append(dict(
                    id=len(anns) + 1, image_id=img_id, iscrowd=0,
                    category_id=NEU_CLASSES.index(
                        obj.findtext('name').strip()) + 1,
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    area=(x2 - x1) * (y2 - y1)))
    cats = [dict(id=i + 1, name=n, supercategory='defect')
            for i, n in enumerate(NEU_CLASSES)]
    path = out / 'annotations' / 'train.json'
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(dict(images=images, annotations=anns,
                                    categories=cats)))
    for split in ('val', 'test'):
        (out / 'annotations' / f'{split}.json').write_text(path.read_text())
    return path


@pytest.mark.real_data
def test_tiny_config_trains_and_evaluates_on_neu_det(neu_det_root, tmp_path):
    from mmengine.runner import Runner
    ann_root = tmp_path / 'coco'
    _write_coco(neu_det_root, ann_root, n_per_class=1)
    cfg = Config.fromfile(str(CFG_DIR / 'yolov8_tiny_neu_det.py'))
    img = str(neu_det_root) + '/'
    ann = str(ann_root) + '/annotations/'
    cfg.train_dataloader.dataset.dataset.update(
        data_root='', data_prefix=dict(img=img), ann_file=ann + 'train.json')
    cfg.train_dataloader.update(batch_size=4, num_workers=0)
    for split in ('val', 'test'):
        cfg[f'{split}_dataloader'].dataset.update(
            data_root='', data_prefix=dict(img=img),
            ann_file=ann + f'{split}.json')
        cfg[f'{split}_dataloader'].update(batch_size=4, num_workers=0)
        _coco_metric(cfg[f'{split}_evaluator']).update(
            ann_file=ann + f'{split}.json')
    cfg.train_cfg.max_epochs = 2
    cfg.train_cfg.val_interval = 2
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=-1, save_last=False)
    cfg.default_hooks.visualization = dict(type='DetVisualizationHook')
    cfg.work_dir = str(tmp_path / 'work')
    cfg.launcher = 'none'
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    assert 0.0 <= metrics['coco/bbox_mAP_50'] <= 1.0
    # the Table 4 metric of our detector, on the same predictions
    assert 0.0 <= metrics['det/mAP_50'] <= 1.0
    assert 0.0 <= metrics['det/avg_iou'] <= 1.0
    assert runner.train_dataloader.dataset.dataset.metainfo['classes'] == \
        NEU_CLASSES
    # YOLOXModeSwitchHook closed mosaic / mixup for the last epoch
    assert set(runner.train_dataloader.dataset._skip_type_keys) == {
        'Mosaic', 'YOLOv8MixUp'}
