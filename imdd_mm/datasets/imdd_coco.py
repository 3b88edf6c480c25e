# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""COCO dataset of the converters' output (docs/DESIGN.md, "Converters'
output"), for mmdet and, as a semantic-segmentation dataset, for mmseg."""
import copy
import os.path as osp
from typing import List, Optional, Sequence

from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO
from mmdet.registry import DATASETS
from mmengine.fileio import get_local_path
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS as SEG_DATASETS

#: extra ``images[i]`` fields of the converters copied into each sample.
IMAGE_EXTRA_KEYS = ('caption', 'caption_nouns', 'is_normal', 'source')


def _categories_of(ann_file: str, backend_args=None) -> List[dict]:
    with get_local_path(ann_file, backend_args=backend_args) as local_path:
        coco = COCO(local_path)
    cats = [coco.cats[i] for i in sorted(coco.cats)]
    if not cats:
        raise ValueError(f'{ann_file}: has no categories; pass '
                         'metainfo=dict(classes=...) explicitly')
    return cats


@DATASETS.register_module()
class IMDDCocoDataset(CocoDataset):
    """mmdet ``CocoDataset`` for the imdd-mm converters' COCO files.

    Differences from ``CocoDataset``:

    - ``metainfo['classes']`` defaults to the names of the file's categories
      (in id order) instead of COCO's 80 classes;
    - labels follow the order of ``metainfo['classes']`` (mmdet keeps the
      file's order), and a class missing from the file is an error;
    - defect-free images are kept (``filter_empty_gt=False`` by default);
    - each sample carries ``caption`` (str), ``caption_nouns`` (list[str]),
      ``is_normal`` (bool), ``source`` (str) and ``image_label`` (label index
      of the image-level class, -1 = normal or unknown), packed into the
      metainfo by ``PackIMDDInputs``.

    Args:
        *args, **kwargs: As for mmdet's ``CocoDataset``.
        filter_cfg (dict, optional): Defaults to
            ``dict(filter_empty_gt=False, min_size=0)``.
    """

    METAINFO = dict(classes=(), palette=None)

    def __init__(self,
                 *args,
                 metainfo: Optional[dict] = None,
                 filter_cfg: Optional[dict] = dict(
                     filter_empty_gt=False, min_size=0),
                 **kwargs) -> None:
        self._classes_given = bool(metainfo and metainfo.get('classes'))
        super().__init__(
            *args, metainfo=metainfo, filter_cfg=filter_cfg, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Load the COCO file; see the class docstring for what differs."""
        with get_local_path(
                self.ann_file, backend_args=self.backend_args) as local_path:
            self.coco = self.COCOAPI(local_path)
        cats = [self.coco.cats[i] for i in sorted(self.coco.cats)]
        if not self._classes_given:
            if not cats:
                raise ValueError(f'{self.ann_file}: has no categories; pass '
                                 'metainfo=dict(classes=...) explicitly')
            self._metainfo['classes'] = tuple(c['name'] for c in cats)
        classes = tuple(self._metainfo['classes'])
        name_to_id = {}
        for cat in cats:
            name_to_id.setdefault(cat['name'], cat['id'])
        missing = [c for c in classes if c not in name_to_id]
        if missing:
            raise ValueError(
                f'{self.ann_file}: metainfo classes {missing} are not among '
                f'the file\'s categories {sorted(name_to_id)}')
        if self._metainfo.get('palette') is None:
            self._metainfo['palette'] = self._make_palette(len(classes))
        self.cat_ids = [name_to_id[c] for c in classes]
        self.cat2label = {cat_id: i for i, cat_id in enumerate(self.cat_ids)}
        self.cat_img_map = copy.deepcopy(self.coco.cat_img_map)

        data_list, total_ann_ids = [], []
        for img_id in self.coco.get_img_ids():
            raw_img_info = self.coco.load_imgs([img_id])[0]
            raw_img_info['img_id'] = img_id
            ann_ids = self.coco.get_ann_ids(img_ids=[img_id])
            total_ann_ids.extend(ann_ids)
            data_list.append(
                self.parse_data_info(
                    dict(
                        raw_ann_info=self.coco.load_anns(ann_ids),
                        raw_img_info=raw_img_info)))
        if self.ANN_ID_UNIQUE and len(set(total_ann_ids)) != len(
                total_ann_ids):
            raise ValueError(
                f'{self.ann_file}: annotation ids are not unique')
        del self.coco
        return data_list

    @staticmethod
    def _make_palette(num: int) -> List[tuple]:
        import numpy as np
        rng = np.random.RandomState(42)
        return [tuple(int(v) for v in rng.randint(0, 255, 3))
                for _ in range(num)]

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """mmdet's parsing plus the converters' image fields."""
        data_info = super().parse_data_info(raw_data_info)
        img_info = raw_data_info['raw_img_info']
        data_info['caption'] = img_info.get('caption') or ''
        data_info['caption_nouns'] = list(img_info.get('caption_nouns') or [])
        data_info['source'] = img_info.get('source') or ''
        is_normal = img_info.get('is_normal')
        if is_normal is None:  # plain COCO files: no instances = normal
            is_normal = len(raw_data_info['raw_ann_info']) == 0
        data_info['is_normal'] = bool(is_normal)
        image_label = img_info.get('image_label')
        data_info['image_label'] = self.cat2label.get(
            image_label, -1) if image_label is not None else -1
        return data_info


@SEG_DATASETS.register_module()
class IMDDCocoSegDataset(BaseSegDataset):
    """Semantic defect segmentation from a converters' COCO file.

    Label 0 is the defect-free background (named by ``background_name``)
    and label ``k + 1`` is the file's k-th category; the map is rasterised
    from the instance masks by ``LoadIMDDSemSegAnnotations``. Pass
    ``metainfo=dict(classes=(background, c1, ...))`` to fix names/order.

    Args:
        ann_file (str): COCO file (relative to ``data_root``).
        background_name (str): Name of label 0 (also its vocabulary
            entry for open-vocabulary heads). Defaults to
            ``'defect-free surface'``.
        **kwargs: As for mmseg's ``BaseSegDataset``.
    """

    METAINFO = dict(classes=(), palette=None)

    def __init__(self,
                 ann_file: str,
                 background_name: str = 'defect-free surface',
                 metainfo: Optional[dict] = None,
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        self.background_name = background_name
        self._classes_given = bool(metainfo and metainfo.get('classes'))
        data_root = kwargs.get('data_root')
        path = ann_file
        if data_root is not None and not osp.isabs(ann_file):
            path = osp.join(data_root, ann_file)
        metainfo = dict(metainfo or {})
        if not self._classes_given:
            names = tuple(c['name'] for c in _categories_of(path))
            metainfo['classes'] = (background_name, ) + names
        classes = tuple(metainfo['classes'])
        metainfo.setdefault(
            'palette', IMDDCocoDataset._make_palette(len(classes)))
        super().__init__(
            ann_file=ann_file,
            metainfo=metainfo,
            reduce_zero_label=reduce_zero_label,
            **kwargs)

    @classmethod
    def get_label_map(cls, new_classes=None):
        """Labels are rasterised in ``metainfo['classes']`` order already;
        no remapping (mmseg's would require a fixed class list)."""
        return None

    def load_data_list(self) -> List[dict]:
        with get_local_path(self.ann_file) as local_path:
            coco = COCO(local_path)
        name_to_id = {}
        for cid in sorted(coco.cats):
            name_to_id.setdefault(coco.cats[cid]['name'], cid)
        classes = tuple(self._metainfo['classes'])
        missing = [c for c in classes[1:] if c not in name_to_id]
        if missing:
            raise ValueError(
                f'{self.ann_file}: classes {missing} are not among the '
                f'file\'s categories {sorted(name_to_id)}')
        cat2label = {name_to_id[c]: i + 1
                     for i, c in enumerate(classes[1:])}
        img_root = self.data_prefix.get('img_path', '') or ''
        data_list = []
        for img_id in coco.get_img_ids():
            info = coco.load_imgs([img_id])[0]
            anns = [
                dict(segmentation=a['segmentation'],
                     label=cat2label[a['category_id']])
                for a in coco.load_anns(coco.get_ann_ids(
                    img_ids=[img_id]))
                if a['category_id'] in cat2label and a.get('segmentation')
            ]
            data_list.append(
                dict(
                    img_path=osp.join(img_root, info['file_name']),
                    seg_map_path=None,
                    seg_annotations=anns,
                    height=info['height'],
                    width=info['width'],
                    label_map=self.label_map,
                    reduce_zero_label=self.reduce_zero_label,
                    seg_fields=[]))
        return data_list


__all__: Sequence[str] = ['IMDDCocoDataset', 'IMDDCocoSegDataset']
