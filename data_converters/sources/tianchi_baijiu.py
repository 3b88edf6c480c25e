# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Tianchi "Bai Jiu" (bottled liquor, 数智重庆 2019/2020 赛场一) -> COCO
(boxes), through the ``coco`` converter with a fixed config.

Expected input tree (as downloaded from the competition page)::

    chongqing1_round1_train1_20191223/     <- --root
    ├── images/img_0017151.jpg ...         4,516 JPGs: 4,105 bottle-cap
    │                                      shots 658x492, 411 label shots
    │                                      4096x3000
    └── annotations.json                   COCO: images (id, file_name,
                                           width, height), annotations
                                           (image_id, category_id, bbox
                                           xywh, no segmentation),
                                           categories 0..10

Categories (COCO id: name): 0 背景 (background: the only annotation of a
defect-free image, a whole-image box), 1 瓶盖破损, 2 瓶盖变形, 3 瓶盖坏边,
4 瓶盖打旋, 5 瓶盖断点, 6 标贴歪斜, 7 标贴起皱, 8 标贴气泡, 9 喷码正常
(a correctly printed date code: not a defect), 10 喷码异常; the second
round adds 11 酒液杂质, 12 瓶身破损, 13 瓶身气泡 (14 names in all, Table 2's
"14 defect types"). Quirks of the release: annotation ``id``\\ s repeat
(2,011 distinct ids for 6,945 annotations) and are not used; a few images
carry a 背景 box beside defect boxes (the 背景 box is dropped, the image is
defective).

Conversion: 背景 and 喷码正常 are ``normal_categories`` (their boxes are
dropped; an image with only those is normal), the other 12 names are the
classes (category ids 1..12 in the order above, stable across rounds).
Boxes are box-only instances. No official split of the training release:
a seeded stratified split is drawn. Config keys of the ``coco`` converter
(``ann_file``, ``image_dir``, ``normal_categories``) may override the
defaults, e.g. ``normal_categories: [背景]`` to keep 喷码正常 as a class.

Counts: the round-1 training release has 4,516 images of which 1,145
carry only a 背景 box (published EDA of the release); Table 2 lists 1,145
normal and 2,225 anomalous images (3,370), which we cannot reproduce from
the public file (see data_converters/README.md).

Licence: Tianchi competition data, research / competition use only
(terms of the Alibaba Cloud Tianchi platform).

Reference: 数智重庆·全球产业赋能创新大赛 赛场一 (Tianchi competition 231763),
https://tianchi.aliyun.com/competition/entrance/231763.
"""
from data_converters.base import register_converter
from data_converters.coco_json import CocoJsonConverter

CATEGORY_NAMES = ('瓶盖破损', '瓶盖变形', '瓶盖坏边', '瓶盖打旋', '瓶盖断点',
                  '标贴歪斜', '标贴起皱', '标贴气泡', '喷码正常', '喷码异常',
                  '酒液杂质', '瓶身破损', '瓶身气泡')
NORMAL_CATEGORIES = ('背景', '喷码正常')


@register_converter('tianchi_baijiu')
class TianchiBaijiuConverter(CocoJsonConverter):
    """Tianchi Bai Jiu bottle defects (see module docstring)."""
    license = 'Tianchi competition data: research/competition use only'
    reference = ('Tianchi, Digital Chongqing Global Industry Empowerment '
                 'Innovation Competition, track 1 (bottled liquor defect '
                 'detection), 2019')
    default_normal_categories = NORMAL_CATEGORIES

    def __init__(self, root, config=None):
        cfg = dict(config or {})
        cfg.setdefault('source', self.name)
        cfg.setdefault('license', self.license)
        cfg.setdefault('reference', self.reference)
        normal = set(map(str, cfg.get('normal_categories',
                                      NORMAL_CATEGORIES)))
        cfg.setdefault('classes', [c for c in CATEGORY_NAMES
                                   if c not in normal])
        super().__init__(root, cfg)
