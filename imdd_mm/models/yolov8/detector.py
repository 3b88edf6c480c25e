# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""YOLOv8 detector: backbone -> PAN-FPN -> decoupled head, as an mmdet
:class:`~mmdet.models.detectors.SingleStageDetector`.

The baseline of Table 4 (§11.2): images are letterboxed to 640 px
(:class:`imdd_mm.datasets.transforms.LetterResize`) and normalised to [0, 1]
by the data preprocessor (``mean=0, std=255, bgr_to_rgb=True``), the
reference normalisation of YOLOv8 (our own detector uses [-1, 1]).
Predictions are ``pred_instances`` (``bboxes`` xyxy, ``labels``, ``scores``)
at the original image size.
"""
from mmdet.models.detectors.single_stage import SingleStageDetector
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig


@MODELS.register_module()
class YOLOv8Detector(SingleStageDetector):
    """YOLOv8 n/s/m/l/x (the size is set by the deepen/widen factors of the
    backbone, neck and head configs).

    Args:
        backbone (dict): :class:`YOLOv8CSPDarknet` config.
        neck (dict): :class:`YOLOv8PAFPN` config.
        bbox_head (dict): :class:`YOLOv8Head` config.
        train_cfg (dict, optional): Passed to the head (``assigner``).
        test_cfg (dict, optional): Passed to the head (``score_thr``,
            ``nms``, ``max_per_img``).
        data_preprocessor (dict, optional): mmdet ``DetDataPreprocessor``.
    """

    def __init__(self,
                 backbone: ConfigType,
                 neck: ConfigType,
                 bbox_head: ConfigType,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            bbox_head=bbox_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
