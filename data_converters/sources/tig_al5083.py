# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""TIG Aluminium 5083 weld-pool images (Bacioiu et al.) -> COCO (image-level
labels).

Expected input tree (the Kaggle release ``tig-aluminium-5083``)::

    al5083/                                     <- --root
    ├── train/
    │   ├── train.json                          {"<run>/<frame>.png": id, ...}
    │   ├── 170906-141809-Al 2mm-part1/*.png    one folder per welding run
    │   └── ...                                 (HDR camera frames)
    └── test/
        ├── test.json                           same form, paths under test/
        └── <run>/*.png

``train.json`` / ``test.json`` map an image path (relative to the JSON's
folder) to a class id: 0 good weld, 1 burn through, 2 contamination, 3 lack
of fusion, 4 misalignment, 5 lack of penetration. Frame file names repeat
across runs, so the path, not the name, identifies an image.

Conversion: id 0 -> normal image; ids 1-5 -> ``image_label`` of that
class (classification only: no masks or boxes). ``train``/``test`` are the
native splits. An id outside the class list, a missing image, an
unreadable JSON or a JSON that is not a path -> id mapping is an error
naming the file; a split folder without its JSON is an error (an empty
conversion is never written). ``classes`` in the config (id order, id 0 =
normal) replaces the list, e.g. for the SS304 release by the same authors
(good weld, burn through, contamination, lack of fusion, lack of shielding
gas, high travel speed); ``source`` renames the provenance then.

Counts: Kaggle lists 33,254 files (~26.7k train, ~6.6k test). Table 2's
"Tungsten Inert Gas" row (30,080 normal + 14,978 anomalous = 45,058) does
not match Al 5083 alone; see data_converters/README.md.

Licence: CC BY-SA 4.0 (Kaggle dataset page).

Reference: D. Bacioiu, G. Melton, M. Papaelias, R. Shaw, "Automated defect
classification of Aluminium 5083 TIG welding using HDR camera and neural
networks", Journal of Manufacturing Processes 45 (2019) 603-613.
"""
from typing import Any, List, Tuple

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, probe_image,
                                  register_converter)
from data_converters.sources._common import read_json

CLASSES = ('good weld', 'burn through', 'contamination', 'lack of fusion',
           'misalignment', 'lack of penetration')
SPLITS = ('train', 'test')


@register_converter('tig_al5083')
class TIGAl5083Converter(BaseConverter):
    """TIG Al 5083 (see module docstring)."""
    license = 'CC BY-SA 4.0'
    reference = ('Bacioiu, Melton, Papaelias and Shaw, Automated defect '
                 'classification of Aluminium 5083 TIG welding using HDR '
                 'camera and neural networks, J. Manuf. Processes 2019')
    native_splits = True

    def __init__(self, root, config=None):
        super().__init__(root, config)
        ids = tuple(str(c) for c in self.config.get('classes', CLASSES))
        if len(ids) < 2:
            raise ConversionError(root, 'config "classes" needs the normal '
                                  'class (id 0) and at least one defect')
        self.id_names = ids
        self.classes = ids[1:]           # id 0 (good weld) is normal
        if self.config.get('source'):
            self.name = str(self.config['source'])

    def _read(self, split: str) -> List[Tuple[str, int]]:
        path = self.root / split / f'{split}.json'
        d = read_json(path, 'label file')
        if not isinstance(d, dict) or not d:
            raise ConversionError(path, 'expected a non-empty JSON object '
                                  '{"<run>/<frame>.png": class id}')
        out = []
        for rel, cid in d.items():
            if isinstance(cid, bool) or not isinstance(cid, int) or \
                    not 0 <= cid < len(self.id_names):
                raise ConversionError(
                    path, f'{rel!r}: class id {cid!r} is not in 0..'
                    f'{len(self.id_names) - 1} ({", ".join(self.id_names)})')
            out.append((f'{split}/{rel.replace(chr(92), "/")}', cid))
        return out

    def scan(self) -> List[Tuple[str, str, int]]:
        items = []
        present = [s for s in SPLITS if (self.root / s).is_dir()]
        if not present:
            raise ConversionError(self.root, 'no train/ or test/ folder '
                                  '(expected train/train.json, '
                                  'test/test.json)')
        for split in present:
            items += [(rel, split, cid) for rel, cid in self._read(split)]
        return sorted(items)

    def item_path(self, item: Any) -> str:
        return item[0]

    def load(self, item) -> ImageRecord:
        rel, split, cid = item
        h, w = probe_image(self.root / rel)
        if cid == 0:
            return ImageRecord(rel, w, h, is_normal=True, split=split,
                               attributes={'class_id': 0})
        return ImageRecord(rel, w, h, image_label=self.id_names[cid],
                           split=split, attributes={'class_id': cid})
