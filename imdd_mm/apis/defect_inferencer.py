# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""``DefectInferencer``: open-vocabulary defect inference from Python, in
the shape of MMDetection 3.3's ``DetInferencer``.

Example:
    >>> from imdd_mm.apis import DefectInferencer
    >>> inferencer = DefectInferencer(
    ...     model='configs/imdd/tiny/stage2_tiny.py',
    ...     weights='work_dirs/tiny/iter_40.pth',
    ...     vocabulary=['scratch', 'crack'], device='cpu')
    >>> result = inferencer('path/to/images', out_dir='outputs/infer')
    >>> result['predictions'][0]['instances'][0]['label']
    'scratch'
    >>> result = inferencer(image_bgr, vocabulary=['stain'])  # new names
"""
import copy
import json
import os.path as osp
from pathlib import Path
from typing import (Any, Dict, Iterator, List, Optional, Sequence, Tuple,
                    Union)

import cv2
import numpy as np
import pycocotools.mask as mask_util
import torch
from mmcv.ops import batched_nms
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.infer import BaseInferencer
from mmengine.logging import print_log

from imdd_mm.utils.provenance import (FROZEN_SOURCES_KEY,
                                      check_frozen_sources,
                                      restore_frozen_sources)
from imdd_mm.utils.run_record import resolve_run_vars
from imdd_mm.visualization.overlay import (draw_heatmap, draw_instances,
                                           encode_png)
from .image_io import (IMAGE_EXTS, atomic_write, list_images,
                       output_stems, read_image, tile_windows, to_bgr_uint8)
from .model_zoo import find_model

InputType = Union[str, Path, np.ndarray]
InputsType = Union[InputType, Sequence[InputType]]


class DefectInferencer(BaseInferencer):
    """Open-vocabulary defect inferencer (mmdet ``DetInferencer``-style).

    Call it on an image path, a folder (recursive), a numpy array (cv2
    layout: (H, W) gray or (H, W, 3|4) BGR(A), any integer or float dtype)
    or a list of them. Per image it returns the instances (RLE masks, xyxy
    boxes, labels from the vocabulary, scores), the per-pixel defect score
    map and the image label and score; with ``out_dir`` it writes
    ``<stem>_overlay.png``, ``<stem>_heatmap.png`` and ``<stem>.json``, the
    files of ``tools/infer.py``.

    The vocabulary can change between calls (``vocabulary=`` of
    :meth:`__call__` or :meth:`set_vocabulary`) without rebuilding the
    model; the text encoder caches the embeddings of every vocabulary it
    has seen, so returning to one costs no text-tower call.

    Args:
        model (str | Config | dict): A config file, a config, or a model
            name from a ``configs/**/metafile.yml``.
        weights (str, optional): Stage-2 checkpoint; None takes the
            metafile's weights for a model name. Without weights the
            trainable head is randomly initialised (a warning says so).
        vocabulary (Sequence[str], optional): Defect names; None keeps the
            config's ``test_vocabulary`` or the checkpoint's classes.
        device (str, optional): Torch device; None picks ``cuda:0`` when
            available, else CPU.
        scope (str): Registry scope. Defaults to 'mmdet'.
        cfg_options (dict, optional): Config overrides (``--cfg-options``).
        tile_size (int): Images larger than this on either side run as
            overlapping tiles of this size. Defaults to 1024.
        tile_overlap (float): Tile overlap fraction in [0, 1).
        max_instances (int): Instances kept per image after tile merging.
        show_progress (bool): Show a progress bar over the inputs.
    """

    preprocess_kwargs: set = {'skip_unreadable'}
    forward_kwargs: set = set()
    visualize_kwargs: set = {'return_vis', 'no_save_vis'}
    postprocess_kwargs: set = {
        'no_save_pred', 'return_score_map', 'print_result'
    }

    def __init__(self,
                 model: Union[str, Config, dict],
                 weights: Optional[str] = None,
                 vocabulary: Optional[Sequence[str]] = None,
                 device: Optional[str] = None,
                 scope: str = 'mmdet',
                 cfg_options: Optional[dict] = None,
                 tile_size: int = 1024,
                 tile_overlap: float = 0.25,
                 max_instances: int = 100,
                 show_progress: bool = True) -> None:
        import imdd_mm
        from mmengine.registry import init_default_scope
        imdd_mm.register_all_modules(init_default_scope=False)
        init_default_scope(scope)
        tile_windows(1, 1, tile_size, tile_overlap)  # validate early
        if max_instances < 1:
            raise ValueError(f'max_instances must be >= 1, got '
                             f'{max_instances}')
        self.scope = scope
        self.tile_size = int(tile_size)
        self.tile_overlap = float(tile_overlap)
        self.max_instances = int(max_instances)
        self.show_progress = show_progress
        self.cfg_options = dict(cfg_options or {})
        if device is None:
            device = 'cuda:0' if torch.cuda.is_available() else 'cpu'
        cfg, weights = self._resolve_model(model, weights)
        self.weights = weights
        self.model = self._init_model(cfg, weights, device)
        self.cfg = self.model.cfg
        self.pipeline = self._init_pipeline(self.cfg)
        self.visualizer = None  # overlays are drawn by imdd_mm.visualization
        self.num_unnamed_inputs = 0
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    # ------------------------------------------------------------------
    # model, pipeline, vocabulary
    def _resolve_model(self, model, weights) -> Tuple[Config, Optional[str]]:
        if isinstance(model, (str, Path)):
            if Path(model).is_file():
                return Config.fromfile(str(model)), weights
            cfg, zoo_weights = self._load_model_from_metafile(str(model))
            return cfg, weights if weights is not None else zoo_weights
        if isinstance(model, Config):
            return copy.deepcopy(model), weights
        if isinstance(model, dict):
            return Config(copy.deepcopy(dict(model))), weights
        raise TypeError(f'model must be a config file, a Config or a model '
                        f'name, got {type(model).__name__}')

    def _load_model_from_metafile(self, model: str) -> Tuple[Config, Any]:
        """Config and weights of a model name listed in a metafile."""
        entry = find_model(model)
        return Config.fromfile(entry['config']), entry.get('weights')

    def _init_model(self, cfg: Config, weights: Optional[str],
                    device: str = 'cpu') -> torch.nn.Module:
        """The one place where the inferencer builds its model.

        Applies ``cfg_options``, builds the model as mmdet's
        ``init_detector`` does (no train_cfg), loads ``weights`` (their
        ``meta.dataset_meta.classes`` become the default vocabulary, without
        mmdet's fall-back to COCO's classes), moves it to ``device`` and
        sets eval mode.
        """
        from mmdet.registry import MODELS
        from mmengine.model.utils import revert_sync_batchnorm
        from mmengine.runner import load_checkpoint
        cfg = copy.deepcopy(cfg)
        if self.cfg_options:
            cfg.merge_from_dict(self.cfg_options)
        # '${category}' run variables, as tools/test.py resolves them
        resolve_run_vars(cfg)
        # a Stage-2 checkpoint's recorded frozen sources (its Stage-1
        # checkpoint) when the config leaves them unset; another source
        # named by the config is an error unless override_frozen_sources
        override = bool(cfg.model.get('override_frozen_sources', False))
        if weights is not None and osp.isfile(osp.expanduser(str(weights))):
            restore_frozen_sources(cfg, weights, override=override)
        cfg.model.train_cfg = None  # as mmdet's init_detector
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
        if weights is None:
            print_log(
                'DefectInferencer: no weights given: the trainable head is '
                'randomly initialised (frozen parts load from the config)',
                logger='current', level=30)
        else:
            checkpoint = load_checkpoint(model, weights, map_location='cpu')
            meta = (checkpoint or {}).get('meta', {}) or {}
            check_frozen_sources(model.frozen_sources(),
                                 meta.get(FROZEN_SOURCES_KEY),
                                 override=override, source=str(weights))
            # the checkpoint's classes (never mmdet's COCO fallback: the
            # vocabulary then comes from the config or the caller)
            classes = (meta.get('dataset_meta') or {}).get('classes')
            if classes:
                model.dataset_meta = dict(classes=tuple(classes))
        model.cfg = cfg
        model.to(device)
        if not hasattr(model, 'set_vocabulary'):
            raise TypeError(f'{type(model).__name__} has no set_vocabulary(); '
                            'DefectInferencer needs an open-vocabulary model '
                            'such as IMDDMask2Former')
        model.eval()
        return model

    def _init_pipeline(self, cfg: Config) -> Compose:
        """The config's test pipeline for in-memory images, without ground
        truth loading."""
        pipeline = []
        for step in cfg.test_dataloader.dataset.pipeline:
            kind = step['type'].split('.')[-1]
            if kind == 'LoadImageFromFile':
                pipeline.append(dict(type='mmdet.LoadImageFromNDArray'))
            elif kind != 'LoadAnnotations':
                pipeline.append(dict(step))
        return Compose(pipeline)

    def set_vocabulary(self, names: Sequence[str]) -> None:
        """Activate defect names (may be unseen in training)."""
        if isinstance(names, str):
            names = names.split(',')
        names = [str(n).strip() for n in names if str(n).strip()]
        if not names:
            raise ValueError('the vocabulary needs at least one name')
        self.model.set_vocabulary(names)

    @property
    def vocabulary(self) -> Optional[Tuple[str, ...]]:
        """The active defect names."""
        return self.model.panoptic_head.vocabulary

    # ------------------------------------------------------------------
    # inputs
    def _inputs_to_list(self, inputs: InputsType,
                        exclude: Optional[Path] = None
                        ) -> List[Tuple[Any, str, Path]]:
        """``(path or array, source name, output stem)`` per image."""
        if isinstance(inputs, (str, Path, np.ndarray)):
            inputs = [inputs]
        items: List[Tuple[Any, str, Path]] = []
        for item in inputs:
            if isinstance(item, np.ndarray):
                stem = Path(f'{self.num_unnamed_inputs:08d}')
                self.num_unnamed_inputs += 1
                items.append((item, f'<array {stem.name}>', stem))
            elif isinstance(item, (str, Path)):
                root, files = list_images(item, exclude=exclude)
                stems = output_stems(root, files)
                items.extend((f, str(f), stems[f]) for f in files)
            else:
                raise TypeError(f'unsupported input type '
                                f'{type(item).__name__}: give a path, a '
                                'folder or a numpy array')
        # unique output stems across all inputs
        seen: Dict[Path, int] = {}
        unique = []
        for data, source, stem in items:
            count = seen.get(stem, 0)
            seen[stem] = count + 1
            if count:
                stem = stem.with_name(f'{stem.name}_{count}')
            unique.append((data, source, stem))
        return unique

    def preprocess(self, inputs: List[Tuple[Any, str, Path]],
                   batch_size: int = 1,
                   skip_unreadable: bool = False) -> Iterator[dict]:
        """Decode each input to (H, W, 3) uint8 BGR.

        Yields:
            dict: ``source``, ``stem`` and either ``image`` or ``error``
            (only when ``skip_unreadable``; otherwise a ``ValueError``
            naming the file is raised).
        """
        for data, source, stem in inputs:
            try:
                if isinstance(data, np.ndarray):
                    image = to_bgr_uint8(data)
                else:
                    image = read_image(data)
            except (ValueError, OSError, cv2.error) as err:
                if not skip_unreadable:
                    raise ValueError(str(err) if source in str(err) else
                                     f'{source}: {err}') from err
                yield dict(source=source, stem=stem, error=str(err))
                continue
            yield dict(source=source, stem=stem, image=image)

    # ------------------------------------------------------------------
    # model
    @torch.no_grad()
    def forward(self, image: np.ndarray, batch_size: int = 1) -> Dict:
        """Run the model on one BGR image, tiled when it is large.

        Args:
            image (np.ndarray): (H, W, 3) uint8 BGR.
            batch_size (int): Tiles per forward pass.

        Returns:
            dict: ``masks`` (N, H, W) bool, ``labels`` (N,), ``scores``
            (N,), ``boxes`` (N, 4) xyxy, ``score_map`` (H, W) float32,
            ``image_label`` (int, -1 normal), ``image_score`` (float),
            ``tiles`` (int).
        """
        height, width = image.shape[:2]
        windows = tile_windows(height, width, self.tile_size,
                               self.tile_overlap)
        score_map = np.zeros((height, width), np.float32)
        found = []  # (window, tile mask, label, score, box in image coords)
        image_score, image_label = 0.0, -1
        for start in range(0, len(windows), max(1, batch_size)):
            chunk = windows[start:start + max(1, batch_size)]
            datas = [
                self.pipeline(dict(img=image[y0:y1, x0:x1].copy(), img_id=0))
                for x0, y0, x1, y1 in chunk
            ]
            batch = dict(inputs=[d['inputs'] for d in datas],
                         data_samples=[d['data_samples'] for d in datas])
            samples = self.model.test_step(batch)
            for (x0, y0, x1, y1), sample in zip(chunk, samples):
                tile_scores = sample.pred_score_map.data[0].cpu().numpy()
                score_map[y0:y1, x0:x1] = np.maximum(
                    score_map[y0:y1, x0:x1], tile_scores)
                if float(sample.get('pred_image_score', 0.0)) > image_score:
                    image_score = float(sample.pred_image_score)
                    image_label = int(sample.get('pred_image_label', -1))
                pred = sample.pred_instances
                masks = pred.masks.cpu().numpy().astype(bool)
                for mask, label, score in zip(masks, pred.labels.tolist(),
                                              pred.scores.tolist()):
                    ys, xs = np.nonzero(mask)
                    if len(xs) == 0:
                        continue
                    box = [xs.min() + x0, ys.min() + y0, xs.max() + 1 + x0,
                           ys.max() + 1 + y0]
                    found.append(((x0, y0, x1, y1), mask, label, score, box))
        keep = list(range(len(found)))
        if len(windows) > 1 and found:
            # instances cut by tile borders appear in several tiles: NMS
            boxes = torch.tensor([f[4] for f in found], dtype=torch.float32)
            scores = torch.tensor([f[3] for f in found], dtype=torch.float32)
            labels = torch.tensor([f[2] for f in found])
            _, keep_t = batched_nms(boxes, scores, labels,
                                    dict(type='nms', iou_threshold=0.5))
            keep = keep_t.tolist()
        keep = sorted(keep, key=lambda i: -found[i][3])[:self.max_instances]
        masks = np.zeros((len(keep), height, width), bool)
        for row, i in enumerate(keep):
            (x0, y0, x1, y1), mask = found[i][0], found[i][1]
            masks[row, y0:y1, x0:x1] = mask
        return dict(
            masks=masks,
            labels=np.array([found[i][2] for i in keep], np.int64),
            scores=np.array([found[i][3] for i in keep], np.float32),
            boxes=np.array([found[i][4] for i in keep],
                           np.float32).reshape(-1, 4),
            score_map=score_map,
            image_label=image_label,
            image_score=image_score,
            tiles=len(windows))

    # ------------------------------------------------------------------
    # outputs
    @staticmethod
    def _kept(pred: Dict, score_thr: float) -> Dict:
        keep = pred['scores'] >= score_thr
        names = ('masks', 'labels', 'scores', 'boxes')
        return {k: pred[k][keep] for k in names}

    def visualize(self, image: np.ndarray, pred: Dict,
                  pred_score_thr: float = 0.3,
                  out_stem: Optional[Path] = None,
                  return_vis: bool = False,
                  no_save_vis: bool = False
                  ) -> Optional[Dict[str, np.ndarray]]:
        """Overlay (instances above ``pred_score_thr``) and heat map as RGB
        arrays; written as PNGs beside ``out_stem`` unless ``no_save_vis``.
        """
        save = out_stem is not None and not no_save_vis
        if not (save or return_vis):
            return None
        rgb = np.ascontiguousarray(image[..., ::-1])
        kept = self._kept(pred, pred_score_thr)
        overlay = draw_instances(rgb, kept['masks'], kept['labels'],
                                 list(self.vocabulary), kept['scores'],
                                 kept['boxes'])
        heatmap = draw_heatmap(rgb, pred['score_map'])
        if save:
            atomic_write(out_stem.with_name(out_stem.name + '_overlay.png'),
                         encode_png(overlay))
            atomic_write(out_stem.with_name(out_stem.name + '_heatmap.png'),
                         encode_png(heatmap))
        return dict(overlay=overlay, heatmap=heatmap) if return_vis else None

    def pred2dict(self, pred: Dict, source: str, height: int, width: int,
                  pred_score_thr: float) -> Dict:
        """The JSON record of one image (instances above the threshold,
        masks as COCO RLE with ``counts`` as str)."""
        vocab = list(self.vocabulary)
        kept = self._kept(pred, pred_score_thr)
        instances = []
        for mask, label, score, box in zip(kept['masks'], kept['labels'],
                                           kept['scores'], kept['boxes']):
            rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
            instances.append(
                dict(label=vocab[int(label)], label_id=int(label),
                     score=round(float(score), 6),
                     bbox_xyxy=[round(float(v), 2) for v in box],
                     area=int(mask.sum()),
                     mask_rle=dict(size=[int(s) for s in rle['size']],
                                   counts=rle['counts'].decode('ascii'))))
        label = pred['image_label']
        return dict(
            image=source,
            height=int(height),
            width=int(width),
            vocabulary=vocab,
            tiles=pred['tiles'],
            image_label='normal' if label < 0 else vocab[label],
            image_score=round(float(pred['image_score']), 6),
            max_defect_probability=round(float(pred['score_map'].max()), 6),
            score_thr=pred_score_thr,
            instances=instances)

    def postprocess(self, pred: Dict, source: str, height: int, width: int,
                    pred_score_thr: float = 0.3,
                    out_stem: Optional[Path] = None,
                    no_save_pred: bool = False,
                    return_score_map: bool = True,
                    print_result: bool = False) -> Dict:
        """The prediction record of one image; written as JSON beside
        ``out_stem`` unless ``no_save_pred``. The returned record adds
        ``score_map`` (H, W) float32 when ``return_score_map``."""
        record = self.pred2dict(pred, source, height, width, pred_score_thr)
        if out_stem is not None and not no_save_pred:
            atomic_write(out_stem.with_name(out_stem.name + '.json'),
                         (json.dumps(record, indent=2) + '\n').encode())
        if print_result:
            print_log(f'{source}: {record["image_label"]} '
                      f'({record["image_score"]:.3f}), '
                      f'{len(record["instances"])} instance(s)',
                      logger='current')
        if return_score_map:
            record = dict(record, score_map=pred['score_map'])
        return record

    def __call__(self,
                 inputs: InputsType,
                 vocabulary: Optional[Sequence[str]] = None,
                 batch_size: int = 1,
                 return_datasamples: bool = False,
                 pred_score_thr: float = 0.3,
                 out_dir: Optional[str] = None,
                 **kwargs) -> Dict[str, list]:
        """Infer on images.

        Args:
            inputs: A path, a folder, a numpy array or a list of them.
            vocabulary (Sequence[str], optional): Defect names for this call
                and the next ones.
            batch_size (int): Tiles per forward pass.
            return_datasamples (bool): Not supported (tiled images have no
                single data sample); must be False.
            pred_score_thr (float): Instances below it are dropped.
            out_dir (str, optional): Write overlays, heat maps and JSON
                here (``no_save_vis`` / ``no_save_pred`` turn them off).
            **kwargs: ``skip_unreadable`` (report unreadable files in
                ``skipped`` instead of raising), ``return_vis``,
                ``no_save_vis``, ``no_save_pred``, ``return_score_map``
                (default True), ``print_result``.

        Returns:
            dict: ``predictions`` (one record per image, see
            :meth:`pred2dict`, plus ``score_map``), ``visualization``
            (dicts with ``overlay`` / ``heatmap`` RGB arrays when
            ``return_vis``, else empty) and ``skipped`` (``file`` and
            ``reason`` of unreadable inputs).
        """
        if return_datasamples:
            raise ValueError('return_datasamples is not supported: tiled '
                             'images have no single DetDataSample')
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)
        if self.vocabulary is None:
            self.model._activate_vocabulary(train=False)
        (pre_kw, _, vis_kw, post_kw) = self._dispatch_kwargs(**kwargs)
        out = Path(out_dir) if out_dir is not None else None
        items = self._inputs_to_list(inputs, exclude=out)
        if not items:
            raise FileNotFoundError(f'{inputs}: no images '
                                    f'({", ".join(IMAGE_EXTS)})')
        predictions, visualization, skipped = [], [], []
        stream = self.preprocess(items, batch_size=batch_size, **pre_kw)
        if self.show_progress and len(items) > 1:
            from tqdm import tqdm
            stream = tqdm(stream, total=len(items), desc='infer', unit='img')
        for item in stream:
            if 'error' in item:
                skipped.append(dict(file=item['source'],
                                    reason=item['error']))
                print_log(f'skipped {item["source"]}: {item["error"]}',
                          logger='current', level=30)
                continue
            image = item['image']
            stem = out / item['stem'] if out is not None else None
            pred = self.forward(image, batch_size=batch_size)
            vis = self.visualize(image, pred, pred_score_thr, stem, **vis_kw)
            if vis is not None:
                visualization.append(vis)
            predictions.append(
                self.postprocess(pred, item['source'], image.shape[0],
                                 image.shape[1], pred_score_thr, stem,
                                 **post_kw))
        return dict(predictions=predictions, visualization=visualization,
                    skipped=skipped)
