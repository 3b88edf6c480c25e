# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The converters' COCO files, split by normality for anomaly baselines.

Anomaly baselines fit on defect-free images only and are tested on normal
and defective images alike. :class:`AnomalyCocoDataset` is
``IMDDCocoDataset`` with one more filter, so one converter output (e.g. the
Magnetic Tile json, whose ``MT_Free`` images are ``is_normal``) serves both
the fitting and the test dataloader.
"""
import os.path as osp
from typing import List, Optional

from mmdet.registry import DATASETS
from imdd_mm.datasets.imdd_coco import IMDDCocoDataset


@DATASETS.register_module()
class AnomalyCocoDataset(IMDDCocoDataset):
    """``IMDDCocoDataset`` keeping only normal or only defective images.

    Args:
        normality (str, optional): ``'normal'`` keeps images with
            ``is_normal`` true (fitting), ``'defective'`` keeps the others,
            ``None`` keeps all (testing). Defaults to None.
        file_prefix (str, optional): Keep images whose ``file_name`` (path
            relative to ``data_prefix['img']``) starts with it, e.g.
            ``'bottle/'`` for one MVTec AD category. Defaults to None.
        max_images (int, optional): Keep at most this many images after the
            filters, in file order (few-shot ``k``). Defaults to None.
        *args, **kwargs: As for ``IMDDCocoDataset``.
    """

    def __init__(self,
                 *args,
                 normality: Optional[str] = None,
                 file_prefix: Optional[str] = None,
                 max_images: Optional[int] = None,
                 **kwargs) -> None:
        if normality not in (None, 'normal', 'defective'):
            raise ValueError("normality must be None, 'normal' or "
                             f"'defective', got {normality!r}")
        self.normality = normality
        self.file_prefix = file_prefix
        self.max_images = max_images
        super().__init__(*args, **kwargs)

    def filter_data(self) -> List[dict]:
        data_list = super().filter_data()
        if self.normality is not None:
            want = self.normality == 'normal'
            data_list = [d for d in data_list if bool(d['is_normal']) == want]
        if self.file_prefix:
            root = self.data_prefix.get('img', '') or ''
            data_list = [
                d for d in data_list
                if osp.relpath(d['img_path'], root or '.').replace(
                    osp.sep, '/').startswith(self.file_prefix)
            ]
        if self.max_images is not None:
            data_list = data_list[:int(self.max_images)]
        if not data_list:
            raise ValueError(
                f'{self.ann_file}: no images left after filtering '
                f'(normality={self.normality!r}, '
                f'file_prefix={self.file_prefix!r})')
        return data_list
