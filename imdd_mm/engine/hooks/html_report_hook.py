# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Write a self-contained HTML report at the end of testing
(``tools/test.py CONFIG CKPT --report report.html``)."""
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import mmcv
import numpy as np
from mmdet.registry import HOOKS
from mmengine.dist import all_gather_object, get_world_size, is_main_process
from mmengine.hooks import Hook

from imdd_mm.utils.provenance import describe_source, random_names
from imdd_mm.visualization.overlay import to_rgb_uint8
from imdd_mm.visualization.report import (Curve, ReportSample,
                                          roc_curve_points,
                                          write_html_report)


def _numpy(value) -> Optional[np.ndarray]:
    if value is None:
        return None
    if hasattr(value, 'to_ndarray'):  # BitmapMasks
        return value.to_ndarray()
    if hasattr(value, 'detach'):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def sample_to_report(sample,
                     class_names: Sequence[str],
                     score_thr: float = 0.0) -> ReportSample:
    """Build a :class:`ReportSample` from a predicted ``DetDataSample``
    (reads the original image from ``img_path``; predicted instances below
    ``score_thr`` are not drawn). The sample is named by its class folder
    and file name (``crack/0001.png``), which tells apart equal file names
    of different folders. Labels are named by the sample's
    ``pred_label_names`` when the model records them (a test vocabulary
    mapped to the dataset's categories), else by ``class_names``."""
    class_names = sample.metainfo.get('pred_label_names') or class_names
    path = sample.get('img_path')
    if not path or not osp.isfile(path):
        raise FileNotFoundError(f'{path!r}: image not found')
    image = to_rgb_uint8(mmcv.imread(path, flag='unchanged'))
    gt = sample.get('gt_instances')
    pred = sample.get('pred_instances')
    if pred is not None and 'scores' in pred and len(pred) > 0:
        pred = pred[pred.scores >= score_thr]
    score_map = sample.get('pred_score_map')
    label = int(sample.get('pred_image_label', -1))
    label_name = 'normal' if label < 0 else (
        class_names[label] if label < len(class_names) else str(label))
    score = sample.get('pred_image_score')
    if score is not None:
        label_name += f' ({float(score):.2f})'
    return ReportSample(
        name='/'.join(osp.normpath(path).split(osp.sep)[-2:]),
        image=image,
        class_names=list(class_names),
        gt_masks=_numpy(gt.masks) if gt is not None and 'masks' in gt else
        None,
        gt_labels=_numpy(gt.labels).tolist()
        if gt is not None and 'labels' in gt else [],
        pred_masks=_numpy(pred.masks) if pred is not None and 'masks' in pred
        else None,
        pred_labels=_numpy(pred.labels).tolist() if pred is not None else [],
        pred_scores=_numpy(pred.scores).tolist() if pred is not None else [],
        pred_boxes=_numpy(pred.bboxes) if pred is not None and 'bboxes' in
        pred else None,
        score_map=_numpy(score_map.data)[0] if score_map is not None else
        None,
        caption=sample.metainfo.get('caption', '') or '',
        image_label=label_name)


def frozen_source_lines(runner) -> Tuple[List[str], List[str]]:
    """(notes, warnings) of the model's frozen networks for the report: one
    note listing every source, and a warning when any is random."""
    model = getattr(runner.model, 'module', runner.model)
    get = getattr(model, 'frozen_sources', None)
    if not callable(get):
        return [], []
    sources = get()
    notes = ['frozen networks: ' + '; '.join(
        f'{name}: {describe_source(src)}' for name, src in sources.items())]
    names = random_names(sources)
    warnings = [f'RANDOM FROZEN WEIGHTS: {", ".join(names)} had random '
                'weights (model.allow_random_frozen=True); these results are '
                'not those of the pretrained networks.'] if names else []
    return notes, warnings


@HOOKS.register_module()
class HTMLReportHook(Hook):
    """Collect predictions during testing and write an HTML report.

    The report holds the test metrics, the image-level ROC curve of
    ``pred_image_score`` against ``is_normal`` and up to ``max_samples``
    predictions beside their ground truth (defective images first).

    Args:
        out_file (str): Where to write the report.
        max_samples (int): Images shown. Defaults to 12.
        title (str): Report title.
        score_thr (float): Predicted instances below this score are not
            drawn (the metrics use them all). Defaults to 0.3, as
            ``tools/infer.py``.
    """

    priority = 'LOW'

    def __init__(self,
                 out_file: str,
                 max_samples: int = 12,
                 title: str = 'imdd-mm test report',
                 score_thr: float = 0.3) -> None:
        self.out_file = out_file
        self.score_thr = score_thr
        self.max_samples = max_samples
        self.title = title
        self._samples = []
        self._defective = []  # per kept sample: not is_normal
        self._scores = []
        self._labels = []

    def _class_names(self, runner) -> Sequence[str]:
        model = getattr(runner.model, 'module', runner.model)
        head = getattr(model, 'panoptic_head', None)
        names = getattr(head, 'vocabulary', None)
        if names:
            return list(names)
        meta = runner.test_dataloader.dataset.metainfo
        return list(meta.get('classes', ()))

    def before_test(self, runner) -> None:
        self._samples, self._defective = [], []
        self._scores, self._labels = [], []

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        for sample in outputs or []:
            defective = not sample.metainfo.get('is_normal', False)
            if sample.get('pred_image_score') is not None:
                self._scores.append(float(sample.pred_image_score))
                self._labels.append(int(defective))
            # Keep the first defective images, and a few normal ones.
            n_def = sum(self._defective)
            n_norm = len(self._samples) - n_def
            want = (n_def < max(1, self.max_samples * 3 // 4) if defective
                    else n_norm < max(1, self.max_samples // 4))
            if want and len(self._samples) < self.max_samples:
                try:
                    item = sample_to_report(sample,
                                            self._class_names(runner),
                                            self.score_thr)
                except Exception as err:  # the report must not stop a test
                    runner.logger.warning(
                        f'HTMLReportHook: sample '
                        f'{sample.get("img_path")!r} left out of the '
                        f'report ({err})')
                    continue
                self._samples.append(item)
                self._defective.append(defective)

    def after_test_epoch(self, runner, metrics=None) -> None:
        scores, labels = self._scores, self._labels
        if get_world_size() > 1:  # the ROC curve covers every rank's images
            gathered = all_gather_object((scores, labels))
            scores = [v for part in gathered for v in part[0]]
            labels = [v for part in gathered for v in part[1]]
        if not is_main_process():
            return
        table = {
            key: {
                'value': value
            }
            for key, value in (metrics or {}).items()
            if isinstance(value, (int, float, np.number))
            and not isinstance(value, bool)
        }
        curves = []
        fpr, tpr = roc_curve_points(scores, labels)
        if len(fpr):
            curves.append(
                Curve('Image-level ROC', 'false positive rate',
                      'true positive rate', {'pred_image_score': (fpr, tpr)}))
        notes, warnings = frozen_source_lines(runner)
        write_html_report(
            self.out_file,
            self.title,
            tables={'Test metrics': table},
            curves=curves,
            samples=self._samples,
            notes=[
                f'config: {osp.basename(runner.cfg.filename or "")}; '
                f'images evaluated: {len(runner.test_dataloader.dataset)}; '
                f'vocabulary: {", ".join(self._class_names(runner))}'
            ] + notes,
            warnings=warnings)
        runner.logger.info(f'HTML report written to {self.out_file}')
