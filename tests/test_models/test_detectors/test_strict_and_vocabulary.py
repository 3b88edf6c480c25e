# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Trust checks of the Stage-2 model: strict constructors (a config typo
fails at build), no ground-truth caption at evaluation, and a test
vocabulary mapped to the dataset's categories by name (never by index)."""
import copy
import inspect
import logging
import re
from types import SimpleNamespace

import imdd_mm  # noqa: F401
import numpy as np
import pytest
import torch
from mmdet.evaluation import CocoMetric
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.logging import MMLogger

from imdd_mm.evaluation.metrics import IMDDClassificationMetric
from imdd_mm.models.detectors import VocabularyHook, vocabulary_hook

from .test_imdd_mask2former import (TINY, VOCAB, build, make_samples, run,
                                    run_inputs)


@pytest.fixture(scope='module')
def tiny_cfg():
    from mmdet.utils import register_all_modules
    register_all_modules()
    return Config.fromfile(str(TINY))


@pytest.fixture(scope='module')
def model(tiny_cfg):
    return build(tiny_cfg)


# ---------------------------------------------------------------- strict
def test_ablation_typo_fails_naming_key_and_module(tiny_cfg):
    """An ablation config that misspells ``cond_mode`` must not train the
    full model."""
    cfg = copy.deepcopy(tiny_cfg)
    cfg.merge_from_dict({'model.cond_mod': 'none'})
    with pytest.raises(TypeError, match=r'IMDDMask2Former.*cond_mod'):
        MODELS.build(cfg.model)


@pytest.mark.parametrize('path,key,cls', [
    ('panoptic_head', 'num_querys', 'OVMask2FormerHead'),
    ('panoptic_head.pixel_decoder', 'num_out', 'MultiScaleFPNPixelDecoder'),
])
def test_head_and_pixel_decoder_typos_fail(tiny_cfg, path, key, cls):
    cfg = copy.deepcopy(tiny_cfg)
    cfg.model.vocabulary = list(VOCAB)
    cfg.merge_from_dict({f'model.{path}.{key}': 5})
    with pytest.raises(TypeError, match=rf'{cls}.*{key}'):
        MODELS.build(cfg.model)


def test_strides_must_match_the_input_maps(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    cfg.model.vocabulary = list(VOCAB)
    cfg.model.panoptic_head.strides = [8, 16]
    with pytest.raises(ValueError, match='strides'):
        MODELS.build(cfg.model)


def _registered_classes():
    from mmdet.registry import METRICS as DET_METRICS
    from mmdet.registry import TASK_UTILS, TRANSFORMS
    from mmseg.registry import MODELS as SEG_MODELS
    seen = {}
    for registry in (MODELS, SEG_MODELS, DET_METRICS, TASK_UTILS,
                     TRANSFORMS):
        for name, cls in registry.module_dict.items():
            if inspect.isclass(cls) and cls.__module__.startswith(
                    'imdd_mm.'):
                seen[cls.__qualname__] = cls
    return seen


def test_no_registered_module_swallows_unknown_arguments():
    """A registered module of ours takes ``**kwargs`` only to hand them to a
    base class (which then rejects unknown ones), never to drop them."""
    classes = _registered_classes()
    assert {'IMDDMask2Former', 'OVMask2FormerHead',
            'MultiScaleFPNPixelDecoder'} <= set(classes)
    bad = []
    for name, cls in classes.items():
        init = cls.__dict__.get('__init__')
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            continue
        src = inspect.getsource(init)
        if not re.search(r'super\([^)]*\)\.__init__\([^)]*\*\*kwargs', src,
                         re.S):
            bad.append(name)
    assert not bad, f'**kwargs not forwarded to a base class: {bad}'


# -------------------------------------------------------- caption leakage
def _captioned(kinds, key='caption'):
    samples = make_samples(kinds)
    for s in samples:
        s.set_metainfo({key: 'a scratch on a dark tile'})
    return samples


def test_caption_mode_evaluates_on_the_implicit_caption(tiny_cfg):
    model = build(tiny_cfg, cond_mode='caption')
    model.eval()
    img = run_inputs(model, make_samples(['defect', 'defect']))
    with torch.no_grad():
        implicit = model.captioner(img)
        cond = model.compute_condition(img, _captioned(['defect', 'defect']))
        # the converters' captions (built from GT classes) are ignored
        assert torch.allclose(cond, implicit)
        text = model._encode_texts(['a scratch on a dark tile'], img.device)
        assert not torch.allclose(cond[0, 0], text[0], atol=1e-3)
        # predictions do not depend on a ground-truth caption
        a = run(model, _captioned(['defect']), 'predict')[0]
        b = run(model, make_samples(['defect']), 'predict')[0]
        assert torch.equal(a.pred_score_map.data, b.pred_score_map.data)
    # training still uses the captions (caption_prob=1: always)
    train_model = build(tiny_cfg, cond_mode='caption', caption_prob=1.0)
    train_model.train()
    with torch.no_grad():
        cond = train_model.compute_condition(img, _captioned(['defect'] * 2))
        text = train_model._encode_texts(['a scratch on a dark tile'],
                                         img.device)
    assert torch.allclose(cond[:, 0], text.expand(2, -1), atol=1e-5)


def test_user_supplied_caption_is_an_explicit_option(tiny_cfg):
    model = build(tiny_cfg, cond_mode='caption',
                  test_caption_key='user_caption')
    model.eval()
    samples = _captioned(['defect', 'defect'], key='user_caption')
    samples[1].set_metainfo(dict(user_caption=''))  # none for image 2
    img = run_inputs(model, samples)
    with torch.no_grad():
        cond = model.compute_condition(img, samples)
        text = model._encode_texts(['a scratch on a dark tile'], img.device)
        implicit = model.captioner(img)
    assert torch.allclose(cond[0, 0], text[0], atol=1e-5)
    assert torch.allclose(cond[1], implicit[1])


# ------------------------------------------------------------ vocabulary
def test_label_map_by_name():
    lut, names, extra = vocabulary_hook.vocabulary_label_map(
        ['Fray', 'rust', 'crack', 'oil_spot'], ['blowhole', 'crack', 'fray'])
    assert lut == [2, 3, 1, 4]
    assert names == ('blowhole', 'crack', 'fray', 'rust', 'oil_spot')
    assert extra == ['rust', 'oil_spot']


def test_test_vocabulary_predictions_are_mapped_to_dataset_categories(
        model):
    """A test vocabulary in another order, with a name the dataset lacks:
    every label (instances, semantic map, image label) names the same
    category as before, now as a dataset index."""
    vocab = ('fray', 'rust', 'crack')
    model.eval()
    try:
        model.test_vocabulary = vocab
        model.eval_dataset_vocabulary = None
        with torch.no_grad():
            raw = run(model, make_samples(['defect']), 'predict')[0]
        assert raw.pred_label_names == vocab
        model.eval_dataset_vocabulary = VOCAB  # set by VocabularyHook
        with torch.no_grad():
            mapped = run(model, make_samples(['defect']), 'predict')[0]
    finally:
        model.test_vocabulary = None
        model.eval_dataset_vocabulary = None
    names = mapped.pred_label_names
    assert names == VOCAB + ('rust', )
    raw_names = [vocab[i] for i in raw.pred_instances.labels.tolist()]
    got_names = [names[i] for i in mapped.pred_instances.labels.tolist()]
    assert raw_names == got_names and len(got_names) > 0
    assert torch.equal(raw.pred_instances.scores,
                       mapped.pred_instances.scores)
    raw_sem = raw.pred_sem_seg.sem_seg
    lut = torch.tensor([0, 3, 4, 2])  # 0 normal, fray->3, rust->4, crack->2
    assert torch.equal(mapped.pred_sem_seg.sem_seg, lut[raw_sem])
    if raw.pred_image_label >= 0:
        assert names[mapped.pred_image_label] == \
            vocab[raw.pred_image_label]
    else:
        assert mapped.pred_image_label == -1


def _runner(vocabulary, classes, metrics):
    model = SimpleNamespace(test_vocabulary=vocabulary,
                            eval_dataset_vocabulary=None, dataset_meta={})
    loop = SimpleNamespace(
        dataloader=SimpleNamespace(
            dataset=SimpleNamespace(metainfo=dict(classes=classes))),
        evaluator=SimpleNamespace(metrics=list(metrics)))
    return SimpleNamespace(model=model, test_loop=loop, val_loop=loop)


def _capture_log():
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    return logger, handler, records


def test_hook_skips_index_metrics_when_names_are_missing():
    coco, ours = CocoMetric(), IMDDClassificationMetric()
    runner = _runner(('crack', 'rust'), ('blowhole', 'crack'), [coco, ours])
    logger, handler, records = _capture_log()
    try:
        VocabularyHook().before_test(runner)
    finally:
        logger.removeHandler(handler)
    assert runner.model.eval_dataset_vocabulary == ('blowhole', 'crack')
    assert runner.test_loop.evaluator.metrics == [ours]
    warned = [r.getMessage() for r in records
              if r.levelno >= logging.WARNING]
    assert any('CocoMetric skipped' in m and 'rust' in m for m in warned)


def test_hook_keeps_coco_metric_when_all_names_are_categories():
    coco = CocoMetric()
    runner = _runner(('crack', 'blowhole'), ('blowhole', 'crack', 'fray'),
                     [coco])
    VocabularyHook().before_test(runner)
    assert runner.test_loop.evaluator.metrics == [coco]


def test_metrics_refuse_labels_of_another_name_list():
    metric = IMDDClassificationMetric()
    metric.dataset_meta = dict(classes=('blowhole', 'crack'))
    ok = dict(pred_image_label=2, pred_label_names=('blowhole', 'crack',
                                                    'rust'),
              is_normal=False, image_label=1, img_path='a.png')
    metric.process({}, [ok])
    # 'rust' (label 2) never matches the ground-truth 'crack'
    assert metric.compute_metrics(metric.results)['accuracy'] == 0.0
    bad = dict(ok, pred_label_names=('crack', 'blowhole'))
    with pytest.raises(ValueError, match=r'a\.png.*VocabularyHook'):
        metric.process({}, [bad])
    assert np.isfinite(metric.compute_metrics(metric.results)['accuracy'])
