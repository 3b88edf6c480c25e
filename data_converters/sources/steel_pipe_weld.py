# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Steel pipe weld defects (X-ray weld seams) -> COCO (boxes), by reusing
the generic Pascal VOC / YOLO converters with a fixed config.

Supported input trees (``config['format']``, default ``voc``)::

    steel_pipe_weld/                 <- --root, format: voc
    ├── JPEGImages/<name>.jpg
    ├── Annotations/<name>.xml       <object><name> one of the classes below
    └── ImageSets/Main/{train,val,test}.txt   (optional: native splits)

    steel_pipe_weld/                 <- --root, format: yolo
    ├── images/[train|val|test/]<name>.jpg
    └── labels/[train|val|test/]<name>.txt    "c cx cy w h" (normalised),
                                              c indexes the class list

Classes, in the YOLO id order fixed by the dataset's README (0..7):
``0 air-hole, 1 bite-edge, 2 broken-arc, 3 crack, 4 hollow-bead, 5 overlap,
6 slag-inclusion, 7 unfused``; the taxonomy maps them to porosity,
undercut, weld crater, crack, porosity, overlap, slag inclusion, lack of
fusion. Category ids are the YOLO id + 1 in both formats. Any other key of
the generic converters (``image_dir``, ``ann_dir``, ``label_dir``,
``classes`` ...) may be given in the config; see
``data_converters/generic.py``. An XML without objects / an empty label file
is a normal image.

Licence: research use with citation (as stated by the dataset authors).

Reference: D. Yang, Y. Cui, Z. Yu, H. Yuan, "Deep Learning Based Steel Pipe
Weld Defect Detection", Applied Artificial Intelligence 35(15) (2021).
"""
from data_converters.base import (BaseConverter, ConversionError,
                                  register_converter)
from data_converters.generic import VOCConverter, YOLOConverter

SOURCE = 'steel_pipe_weld'
CLASSES = ('air-hole', 'bite-edge', 'broken-arc', 'crack', 'hollow-bead',
           'overlap', 'slag-inclusion', 'unfused')  # YOLO ids 0..7
LICENSE = 'research use with citation'
REFERENCE = ('Yang et al., Deep Learning Based Steel Pipe Weld Defect '
             'Detection, Applied Artificial Intelligence 2021')


def _config(config) -> dict:
    cfg = dict(config or {})
    cfg.setdefault('source', SOURCE)
    cfg.setdefault('license', LICENSE)
    cfg.setdefault('reference', REFERENCE)
    cfg.setdefault('classes', list(CLASSES))
    return cfg


class _SteelPipeVOC(VOCConverter):
    name = SOURCE


class _SteelPipeYOLO(YOLOConverter):
    name = SOURCE


@register_converter(SOURCE)
class SteelPipeWeldConverter(BaseConverter):
    """Dispatches to the VOC or YOLO reader (see module docstring)."""
    license = LICENSE
    reference = REFERENCE
    classes = CLASSES

    def __new__(cls, root, config=None):
        fmt = (config or {}).get('format', 'voc')
        readers = {'voc': _SteelPipeVOC, 'yolo': _SteelPipeYOLO}
        if fmt not in readers:
            raise ConversionError(root, f'{SOURCE}: config "format" must be '
                                  f'one of {sorted(readers)}, got {fmt!r}')
        return readers[fmt](root, _config(config))
