# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""SSGD smartphone screen glass defects (Han et al., ICASSP 2023) -> COCO
(boxes), through the ``coco`` converter.

Expected input tree (the ``defect_screen`` download, laid out as the
authors' MMDetection configs read it)::

    defect_screen/                          <- --root
    ├── images_lb101/*.jpg                  part I
    ├── images_lb201/*.jpg                  part II
    └── annotations/
        ├── lb101/train1.json ... train5.json   COCO, 5-fold cross-
        │         val1.json   ... val5.json     validation of part I
        └── lb201/train1.json ... val5.json     the same for part II
                  (or lb201.json: the whole part, before the fold split)

Categories (COCO names are pinyin; the README's English in brackets):
liewen (crack), bengque (broken), baidian (spot), huahen (scratch),
louguang (light leakage), wuzi (blot), pomo (broken membrane).

Conversion: for each part found, fold ``config['fold']`` (default 1) is
read: ``train<k>.json`` -> ``train``, ``val<k>.json`` -> ``test`` (the
authors evaluate on it; each fold's train + val is the whole part, so
every image is converted once). A part that ships only ``<part>.json`` is
converted from it with a seeded split. ``file_name`` is looked up in
``images_<part>/``. Boxes are box-only instances; an image without boxes is
normal. All checks of the ``coco`` converter apply.

Counts: 2,504 images with 3,914 defects (the release's README); Table 2
lists 2,504 images, 7 defect types, 0 normal.

Licence: academic purposes only (the release's README).

Reference: H. Han, R. Yang, S. Li, R. Hu, X. Li, "SSGD: A smartphone screen
glass dataset for defect detection", ICASSP 2023 (arXiv 2303.06673).
"""
from pathlib import Path
from typing import List, Optional, Tuple

from data_converters.base import ConversionError, register_converter
from data_converters.coco_json import CocoJsonConverter

CLASSES = ('liewen', 'bengque', 'baidian', 'huahen', 'louguang', 'wuzi',
           'pomo')
PARTS = ('lb101', 'lb201')


@register_converter('ssgd')
class SSGDConverter(CocoJsonConverter):
    """SSGD (see module docstring)."""
    license = 'academic purposes only'
    reference = ('Han, Yang, Li, Hu and Li, SSGD: A smartphone screen glass '
                 'dataset for defect detection, ICASSP 2023')

    def __init__(self, root, config=None):
        cfg = dict(config or {})
        for key, value in (('source', self.name), ('license', self.license),
                           ('reference', self.reference),
                           ('classes', list(CLASSES)), ('image_dir', '.')):
            cfg.setdefault(key, value)
        self.fold = int(cfg.pop('fold', 1))
        super().__init__(root, cfg)

    def _ann_files(self) -> List[Tuple[Optional[str], Path]]:
        files = []
        ann = self.root / 'annotations'
        for part in PARTS:
            train = ann / part / f'train{self.fold}.json'
            val = ann / part / f'val{self.fold}.json'
            whole = ann / part / f'{part}.json'
            if train.is_file() or val.is_file():
                for path in (train, val):
                    if not path.is_file():
                        raise ConversionError(path, f'fold {self.fold} file '
                                              'missing (set "fold")')
                files += [('train', train), ('test', val)]
            elif whole.is_file():
                files.append((None, whole))
        if not files:
            raise ConversionError(
                ann, f'no annotations/<part>/train{self.fold}.json, '
                f'val{self.fold}.json or <part>.json for parts '
                f'{", ".join(PARTS)}')
        if len({s for s, _ in files}) > 1 and None in {s for s, _ in files}:
            raise ConversionError(ann, 'one part has fold files and the '
                                  'other only the whole-part JSON; give both '
                                  'parts in the same form')
        return files

    def _image_dirs(self, json_path: Path) -> List[Path]:
        return [self.root / f'images_{json_path.parent.name}']
