# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""ELPV: electroluminescence images of solar cells (ZAE Bayern) -> COCO.

Expected input tree (``src/elpv_dataset/data`` of the published repo)::

    elpv/                      <- --root
    ├── images/cellNNNN.png    300x300 8-bit grayscale cells
    ├── labels.csv             rows: images/cellNNNN.png <prob> <mono|poly>
    └── LICENSE

2,624 cells; defect probability 0 -> 1,508, 1/3 -> 295, 2/3 -> 106,
1 -> 715. Image-level labels only (no masks or boxes).

Label mapping (classification-only source):

* probability 0 -> normal (``is_normal``, ``image_label`` null);
* probability > 0 -> defective: ``image_label`` = category ``defective``
  (taxonomy: solar cell defect) with ``attributes['severity']`` ``low``
  (1/3), ``medium`` (2/3) or ``high`` (1); ``attributes`` also keep the raw
  ``defect_probability`` and ``cell_type``;
* ``mono``/``poly`` -> material monocrystalline / polycrystalline silicon
  (used in the caption; product: solar cell).
* No native split: a seeded split stratified by (probability, cell type).

A malformed ``labels.csv`` row, a probability outside [0, 1] or an unknown
cell type is an error naming ``labels.csv:<line>``.

Licence: CC BY-NC-SA 4.0 (images).

References: S. Deitsch et al., "Automatic classification of defective
photovoltaic module cells in electroluminescence images", Solar Energy 185
(2019); S. Deitsch et al., "Segmentation of photovoltaic module cells in
uncalibrated electroluminescence images", Machine Vision and Applications
32 (2021).
"""
from typing import List, Tuple

from data_converters.base import (BaseConverter, ConversionError,
                                  ImageRecord, probe_image,
                                  register_converter)

MATERIALS = {'mono': 'monocrystalline silicon',
             'poly': 'polycrystalline silicon'}


def severity_of(prob: float) -> str:
    """1/3 -> low, 2/3 -> medium, 1 -> high (nearest level)."""
    if prob <= 0.5:
        return 'low'
    if prob < 0.84:
        return 'medium'
    return 'high'


@register_converter('elpv')
class ELPVConverter(BaseConverter):
    """ELPV solar cells: image-level defect probability."""
    license = 'CC BY-NC-SA 4.0'
    reference = ('Deitsch et al., Solar Energy 185, 2019; Deitsch et al., '
                 'Machine Vision and Applications 32, 2021')
    classes = ('defective', )

    def scan(self) -> List[Tuple[str, int, str]]:
        labels = self.root / 'labels.csv'
        try:
            with open(labels, encoding='utf-8') as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            raise ConversionError(labels, 'missing labels file') from None
        except OSError as e:
            raise ConversionError(labels, f'unreadable ({e})') from None
        items = [(line, k + 1, str(labels)) for k, line in enumerate(lines)
                 if line.strip()]
        return sorted(items, key=lambda it: it[0].split()[0]
                      if it[0].split() else '')

    def item_path(self, item) -> str:
        parts = item[0].split()
        return parts[0] if parts else f'labels.csv:{item[1]}'

    def load(self, item) -> ImageRecord:
        line, lineno, labels = item
        where = f'{labels}:{lineno}'
        parts = line.split()
        if len(parts) != 3:
            raise ConversionError(where, f'expected "<image> <probability> '
                                  f'<mono|poly>", got {line!r}')
        rel, prob_s, kind = parts
        try:
            prob = float(prob_s)
        except ValueError:
            raise ConversionError(where, f'invalid probability {prob_s!r}') \
                from None
        if not 0.0 <= prob <= 1.0:
            raise ConversionError(where, f'probability {prob} outside '
                                  '[0, 1]')
        if kind not in MATERIALS:
            raise ConversionError(where, f'unknown cell type {kind!r}')
        h, w = probe_image(self.root / rel)
        attrs = {'defect_probability': round(prob, 4), 'cell_type': kind}
        stratum = f'{round(prob * 3)}/{kind}'
        if prob == 0.0:
            return ImageRecord(rel, w, h, is_normal=True,
                               material=MATERIALS[kind], attributes=attrs,
                               stratum=stratum)
        attrs['severity'] = severity_of(prob)
        return ImageRecord(rel, w, h, image_label='defective',
                           material=MATERIALS[kind], attributes=attrs,
                           stratum=stratum)
