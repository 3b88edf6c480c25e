# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""DAGM 2007 (weakly supervised industrial optical inspection) -> COCO.

Expected input tree (the HCI Heidelberg release)::

    DAGM_2007/                         <- --root
    ├── Class1/
    │   ├── Train/
    │   │   ├── 0001.PNG ...           512x512 grayscale textures
    │   │   └── Label/
    │   │       ├── Labels.txt         "1" header, then rows
    │   │       │                      "<n> <0|1> <image> 0 <label|0>"
    │   │       └── 0002_label.PNG     filled-ellipse mask of a defect
    │   └── Test/  (same layout)
    ├── Class2/ ... Class10/

Also read: the nested copies ``Class1/Class1/{Train,Test}/...`` (archive
unpacked into a folder of its own name), and the Kaggle upload, where
``Label/Labels.txt`` is tab separated and may start with a UTF-8
byte-order mark.

Conversion:

* One category per texture class, ``Class1`` ... ``Class10`` (taxonomy:
  texture anomaly on a textured surface); ``Train``/``Test`` -> ``train``/
  ``test``.
* An image with ``Label/<stem>_label.PNG`` is defective: one instance from
  the mask (> 127), ``image_label`` = its class. Images without a mask are
  normal. When ``Labels.txt`` is present it is cross-checked: a row flagged
  defective whose mask is missing (or a mask for a row flagged normal) is
  an error naming ``Labels.txt``. The masks are the ellipses the labels
  describe, so no ellipse is re-rasterised.
* Other folders (e.g. the ``Class1_def`` folders of the 2007 competition
  archive) are ignored. A ``Class<N>`` folder with neither ``Train/`` nor
  ``Test/`` (directly or in ``Class<N>/Class<N>/``) is an error naming it,
  as is a class folder without images.

Licence: DAGM 2007 competition data, free for non-commercial research
(see the HCI Heidelberg download page).

Reference: M. Wieler, T. Hahn, "Weakly Supervised Learning for Industrial
Optical Inspection", DAGM 2007 competition (HCI Heidelberg,
``hci.iwr.uni-heidelberg.de``, "weakly supervised learning industrial
optical inspection").
"""
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, register_converter)
from data_converters.sources._common import (find_by_stem, image_size,
                                             list_images, mask_instances,
                                             rel_posix, subdirs)


def read_labels_txt(path: Path) -> Dict[str, Tuple[int, Optional[str]]]:
    """``Labels.txt`` -> {image file: (defect flag, label file or None)}."""
    out: Dict[str, Tuple[int, Optional[str]]] = {}
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConversionError(path, f'unreadable ({e})') from None
    try:
        text = raw.decode('utf-8-sig')
    except UnicodeDecodeError:
        text = raw.decode('latin-1')
    lines = text.splitlines()
    for k, line in enumerate(lines):
        tok = line.split()
        if len(tok) < 3:
            continue  # header ("1") or blank
        if tok[1] not in ('0', '1'):
            raise ConversionError(path, f'line {k + 1}: defect flag '
                                  f'{tok[1]!r} is not 0/1')
        label = tok[4] if len(tok) > 4 and tok[4] != '0' else None
        out[tok[2]] = (int(tok[1]), label)
    return out


@register_converter('dagm2007')
class DAGM2007Converter(BaseConverter):
    """DAGM 2007 (see module docstring)."""
    license = 'DAGM 2007 competition data, non-commercial research use'
    reference = ('Wieler and Hahn, Weakly Supervised Learning for Industrial '
                 'Optical Inspection, DAGM 2007')
    native_splits = True

    def __init__(self, root, config: Optional[dict] = None) -> None:
        super().__init__(root, config)
        self.class_dirs = sorted(
            (d.name for d in subdirs(self.root)
             if re.fullmatch(r'Class\d+', d.name)),
            key=lambda n: int(n[5:]))
        if not self.class_dirs:
            raise ConversionError(self.root, 'no Class<N>/ folders found')
        self.classes = tuple(self.class_dirs)

    def class_base(self, cls: str) -> Path:
        """``ROOT/ClassN`` or, for nested copies, ``ROOT/ClassN/ClassN``."""
        base = self.root / cls
        for cand in (base, base / cls):
            if (cand / 'Train').is_dir() or (cand / 'Test').is_dir():
                return cand
        raise ConversionError(base, 'no Train/ or Test/ folder (neither '
                              f'{cls}/Train nor {cls}/{cls}/Train)')

    def scan(self) -> List[Tuple[str, str, str, Optional[int]]]:
        items = []
        for cls in self.class_dirs:
            base = self.class_base(cls)
            n_before = len(items)
            for sub, split in (('Train', 'train'), ('Test', 'test')):
                folder = base / sub
                labels_txt = folder / 'Label' / 'Labels.txt'
                flags = read_labels_txt(labels_txt) \
                    if labels_txt.is_file() else {}
                for p in list_images(folder):
                    flag = flags.get(p.name, (None, None))[0] \
                        if flags else None
                    if flags and p.name not in flags:
                        raise ConversionError(labels_txt, f'{p.name} is not '
                                              'listed')
                    items.append((rel_posix(self.root, p), cls, split, flag))
            if len(items) == n_before:
                raise ConversionError(base, 'no images in Train/ or Test/')
        return items

    def item_path(self, item: Any) -> str:
        return item[0]

    def load(self, item) -> ImageRecord:
        rel, cls, split, flag = item
        path = self.root / rel
        h, w = image_size(path)
        mask = find_by_stem(path.parent / 'Label', f'{path.stem}_label',
                            ('.PNG', '.png'))
        labels_txt = path.parent / 'Label' / 'Labels.txt'
        if flag == 1 and mask is None:
            raise ConversionError(labels_txt, f'{path.name} is flagged '
                                  'defective but has no _label mask')
        if flag == 0 and mask is not None:
            raise ConversionError(labels_txt, f'{path.name} is flagged '
                                  f'normal but {mask.name} exists')
        if mask is None:
            return ImageRecord(rel, w, h, is_normal=True, split=split)
        return ImageRecord(rel, w, h, image_label=cls, split=split,
                           instances=mask_instances(mask, cls, (h, w)))
