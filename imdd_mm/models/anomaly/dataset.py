# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The converters' COCO files, split by normality for anomaly baselines.

Anomaly baselines fit on defect-free images only and are tested on normal
and defective images alike. :class:`AnomalyCocoDataset` is
``IMDDCocoDataset`` with one more filter, so one converter output (e.g. the
Magnetic Tile json, whose ``MT_Free`` images are ``is_normal``) serves both
the fitting and the test dataloader.

Every image also gets ``object_name``, the inspected object in plain words
for CLIP prompts (packed into the data samples' metainfo by
``PackIMDDInputs``): the taxonomy's product name of the image's object
(:func:`object_prompt_name`: ``metal_nut`` -> "metal nut", ``pcb1`` ->
"printed circuit board", Magnetic Tile -> "magnetic tile"), so a model
prompted per image follows the category of each run, pooled runs included.
"""
import os.path as osp
import re
from typing import List, Optional

from mmdet.registry import DATASETS
from imdd_mm.datasets.imdd_coco import IMDDCocoDataset

GENERIC_PRODUCT = 'industrial product'
MULTI_OBJECT_SOURCES = ('mvtec_ad', 'visa', 'mvtec_ad2', 'btad')


def object_prompt_name(source: Optional[str], obj: Optional[str]) -> str:
    """The object of a source / object folder in plain words.

    Looks the object up in the IMDD taxonomy's ``products`` table of the
    source (``imdd_mm/vocab/data/source_categories.json``: every MVTec AD,
    VisA, MVTec AD 2 and BTAD object), else the source's default product
    (single-product sources such as Magnetic Tile); a folder name without
    a source is looked up in every multi-object source; else the folder name
    with underscores as spaces and trailing digits removed.

    Args:
        source (str, optional): Converter source name, e.g. ``'visa'``.
        obj (str, optional): Object folder, e.g. ``'pcb1'``.

    Returns:
        str: e.g. ``'printed circuit board'``.
    """
    from imdd_mm.vocab import map_category
    product = map_category(source or None, f'{obj}/' if obj else None).get(
        'product')
    if product and (product != GENERIC_PRODUCT or not obj):
        return str(product)
    if obj and not source:  # a bare folder name: any multi-object source
        for known in MULTI_OBJECT_SOURCES:
            product = map_category(known, f'{obj}/').get('product')
            if product and product != GENERIC_PRODUCT:
                return str(product)
    if obj:
        cleaned = re.sub(r'\d+$', '', str(obj)).replace('_', ' ').strip()
        return cleaned or str(obj)
    return GENERIC_PRODUCT


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
        object_name (str, optional): The ``object_name`` of every image
            (prompt words, used as given). ``None``: per image, from the
            taxonomy (:func:`object_prompt_name`) with the object taken
            from the first folder of ``file_name`` when the classes are
            ``"<object>/<defect>"`` (MVTec AD, VisA, ...), else from
            ``file_prefix``, else the source's product.
        *args, **kwargs: As for ``IMDDCocoDataset``.
    """

    def __init__(self,
                 *args,
                 normality: Optional[str] = None,
                 file_prefix: Optional[str] = None,
                 max_images: Optional[int] = None,
                 object_name: Optional[str] = None,
                 **kwargs) -> None:
        if normality not in (None, 'normal', 'defective'):
            raise ValueError("normality must be None, 'normal' or "
                             f"'defective', got {normality!r}")
        self.normality = normality
        self.file_prefix = file_prefix
        self.max_images = max_images
        self.object_name = object_name
        super().__init__(*args, **kwargs)

    def _image_object(self, data_info: dict) -> str:
        if self.object_name is not None:
            return str(self.object_name)
        obj = None
        classes = self.metainfo.get('classes') or ()
        if any('/' in str(c) for c in classes):
            root = self.data_prefix.get('img', '') or ''
            rel = osp.relpath(data_info['img_path'], root or '.').replace(
                osp.sep, '/')
            obj = rel.split('/', 1)[0]
        elif self.file_prefix:
            obj = self.file_prefix.strip('/').split('/', 1)[0]
        return object_prompt_name(data_info.get('source'), obj)

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
        for d in data_list:
            d['object_name'] = self._image_object(d)
        if not data_list:
            raise ValueError(
                f'{self.ann_file}: no images left after filtering '
                f'(normality={self.normality!r}, '
                f'file_prefix={self.file_prefix!r})')
        return data_list
