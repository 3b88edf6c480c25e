# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""DeepPCB -> COCO (boxes, native trainval/test lists).

Expected input tree (the ``PCBData`` folder of the DeepPCB repository)::

    PCBData/                              <- --root (or its parent)
    ├── trainval.txt                      "group00041/00041/00041000.jpg
    ├── test.txt                           group00041/00041_not/00041000.txt"
    ├── group00041/
    │   ├── 00041/00041000_test.jpg       640x640 binarised tested image
    │   ├── 00041/00041000_temp.jpg       defect-free template
    │   └── 00041_not/00041000.txt        one box a line: x1,y1,x2,y2,type
    └── group12000/ ...

Box types: 1 open, 2 short, 3 mousebite, 4 spur, 5 copper (spurious
copper), 6 pin-hole; these are the category names. Values may be separated
by commas or spaces.

Conversion: the list files give the splits (``trainval`` -> ``train``,
``test`` -> ``test``; the image path in a list names ``<n>.jpg``, the file is
``<n>_test.jpg``). Without list files a seeded stratified split is drawn
over every ``*_test.jpg``. Boxes are box-only instances; ``image_label`` is
None (several types per image). The ``*_temp.jpg`` templates are the
dataset's defect-free images: each is a normal image in the split of its
tested image (``config['include_templates']=False`` leaves them out). A
missing template or annotation file, an unknown type or a malformed line
is an error naming the file.

Licence: MIT.

Reference: S. Tang, F. He, X. Huang, J. Yang, "Online PCB Defect Detector On
A New PCB Defect Dataset", arXiv:1902.06197 (2019).
"""
import re
from pathlib import Path
from typing import Any, List, Optional, Tuple

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, Instance, register_converter)
from data_converters.sources._common import image_size, rel_posix

CLASSES = ('open', 'short', 'mousebite', 'spur', 'copper', 'pin-hole')

Item = Tuple[str, str, Optional[str], bool]  # image, ann, split, template


def parse_deeppcb_txt(path: Path) -> List[Tuple[str, List[float]]]:
    """Annotation file -> [(class name, [x, y, w, h])]."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise ConversionError(path, 'missing annotation file') from None
    except OSError as e:
        raise ConversionError(path, f'unreadable ({e})') from None
    out = []
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        tok = [t for t in re.split(r'[,\s]+', line.strip()) if t]
        try:
            x1, y1, x2, y2, t = (int(float(v)) for v in tok)
        except ValueError:
            raise ConversionError(path, f'line {k + 1}: expected '
                                  f'"x1,y1,x2,y2,type", got {line!r}') \
                from None
        if not 1 <= t <= len(CLASSES):
            raise ConversionError(path, f'line {k + 1}: unknown defect type '
                                  f'{t} (1..{len(CLASSES)})')
        out.append((CLASSES[t - 1], [x1, y1, x2 - x1, y2 - y1]))
    return out


@register_converter('deeppcb')
class DeepPCBConverter(BaseConverter):
    """DeepPCB (see module docstring)."""
    license = 'MIT'
    reference = ('Tang et al., Online PCB Defect Detector On A New PCB '
                 'Defect Dataset, arXiv:1902.06197, 2019')
    classes = CLASSES

    def __init__(self, root, config: Optional[dict] = None) -> None:
        super().__init__(root, config)
        if (self.root / 'PCBData').is_dir():
            self.data = self.root / 'PCBData'
        else:
            self.data = self.root

    def _from_lists(self) -> List[Item]:
        items = []
        for fname, split in (('trainval.txt', 'train'), ('test.txt', 'test')):
            lst = self.data / fname
            if not lst.is_file():
                continue
            for k, line in enumerate(lst.read_text().splitlines()):
                tok = line.split()
                if not tok:
                    continue
                if len(tok) != 2:
                    raise ConversionError(lst, f'line {k + 1}: expected '
                                          f'"<image> <annotation>"')
                img = Path(tok[0])
                img = img.with_name(f'{img.stem}_test{img.suffix}')
                items.append((rel_posix(self.root, self.data / img),
                              rel_posix(self.root, self.data / tok[1]),
                              split, False))
        return items

    def scan(self) -> List[Item]:
        items = self._from_lists()
        self.native_splits = bool(items)
        if not items:
            for img in sorted(self.data.glob('group*/*/*_test.jpg')):
                stem = img.stem[:-len('_test')]
                ann = img.parent.parent / f'{img.parent.name}_not' / \
                    f'{stem}.txt'
                items.append((rel_posix(self.root, img),
                              rel_posix(self.root, ann), None, False))
        if not items:
            raise ConversionError(self.data, 'no trainval.txt/test.txt and '
                                  'no group*/<n>/<n>_test.jpg images')
        if self.config.get('include_templates', True):
            items += [(i.replace('_test.', '_temp.'), '', s, True)
                      for i, _, s, _ in list(items)]
        return sorted(items)

    def item_path(self, item: Any) -> str:
        return item[0]

    def load(self, item: Item) -> ImageRecord:
        rel, ann, split, template = item
        h, w = image_size(self.root / rel)
        if template:
            return ImageRecord(rel, w, h, is_normal=True, split=split)
        boxes = parse_deeppcb_txt(self.root / ann)
        inst = [Instance(c, bbox=b, source_path=str(self.root / ann))
                for c, b in boxes]
        return ImageRecord(rel, w, h, instances=inst, is_normal=not inst,
                           split=split)
