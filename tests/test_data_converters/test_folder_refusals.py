# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The folder converter refuses trees that are not what its config says,
with an error naming the path and the likely fix."""
import numpy as np
import pytest

from data_converters import convert as cli
from data_converters.base import ConversionError
from tests.test_data_converters.fake_layouts import gray, write_img


def run(root, out, config=None, **kw):
    return cli.convert('folder', str(root), str(out), config=config or {},
                       progress=False, **kw)


def _mask(h=32, w=48, fill=True):
    m = np.zeros((h, w), np.uint8)
    if fill:
        m[8:20, 10:30] = 255
    return m


def _images_masks_tree(root, ext='.bmp'):
    """``images/<class>/*.bmp`` + ``masks/<class>/*.png`` (the tree of
    issue 13: read without a config, ``images`` and ``masks`` became
    classes)."""
    k = 0
    for cls in ('crack', 'spot'):
        for i in range(2):
            k += 1
            write_img(root / 'images' / cls / f'{i:03d}{ext}',
                      gray(32, 48, k))
            write_img(root / 'masks' / cls / f'{i:03d}.png', _mask())
    return root


def test_layout_folders_as_classes_are_refused(tmp_path):
    root = _images_masks_tree(tmp_path / 'ds')
    with pytest.raises(ConversionError) as e:
        run(root, tmp_path / 'o')
    msg = str(e.value)
    assert "folder 'images' would become a defect class" in msg
    assert 'image_dir: images' in msg and 'mask_dir: masks' in msg
    assert not (tmp_path / 'o').exists()
    # the config that says what the tree is converts it
    s = run(root, tmp_path / 'o', {'image_dir': 'images',
                                   'mask_dir': 'masks'})
    assert s['num_images'] == 4 and s['num_annotations'] == 4
    # listing the classes explicitly is the escape hatch
    with pytest.raises(ConversionError, match='binary image'):
        run(root, tmp_path / 'o2', {'classes': ['images', 'masks']})


def test_mask_tree_read_as_images_is_refused(tmp_path):
    root = _images_masks_tree(tmp_path / 'ds')
    with pytest.raises(ConversionError, match=r'masks/crack/000.png: binary '
                       r'image .* looks like a mask'):
        run(root, tmp_path / 'o', {'image_dir': 'masks'})
    # a mask_dir inside image_dir is left out of the image listing
    (root / 'masks').rename(root / 'images' / 'masks')
    s = run(root, tmp_path / 'o2', {'image_dir': 'images',
                                    'mask_dir': 'images/masks'})
    assert s['num_images'] == 4 and s['num_annotations'] == 4


def test_class_folder_holding_masks_is_refused(tmp_path):
    root = tmp_path / 'ds'
    for i in range(2):
        write_img(root / 'scratch' / f'{i:03d}.png', gray(32, 48, i))
        write_img(root / 'scratch' / f'{i:03d}_mask.png', _mask())
    with pytest.raises(ConversionError) as e:
        run(root, tmp_path / 'o')
    assert 'scratch/000_mask.png: looks like a mask' in str(e.value)
    assert 'mask_suffix: _mask.png' in str(e.value)
    s = run(root, tmp_path / 'o', {'mask_suffix': '_mask.png'})
    assert s['num_images'] == 2 and s['num_annotations'] == 2


def test_size_mismatch_names_mask_and_image(tmp_path):
    root = _images_masks_tree(tmp_path / 'ds')
    write_img(root / 'masks' / 'spot' / '001.png', _mask(30, 48))
    with pytest.raises(ConversionError) as e:
        run(root, tmp_path / 'o', {'image_dir': 'images',
                                   'mask_dir': 'masks'})
    msg = str(e.value)
    assert msg.startswith(str(root / 'masks' / 'spot' / '001.png'))
    assert 'differs from image size' in msg and 'images/spot/001.bmp' in msg
    assert 'mask_dir' in msg


def test_empty_class_folder_and_empty_tree(tmp_path):
    root = _images_masks_tree(tmp_path / 'ds')
    (root / 'images' / 'dent').mkdir()
    with pytest.raises(ConversionError, match=r'images/dent: empty class '
                       'folder'):
        run(root, tmp_path / 'o', {'image_dir': 'images',
                                   'mask_dir': 'masks'})
    with pytest.raises(ConversionError, match='mask_dir not found'):
        run(root, tmp_path / 'o1', {'image_dir': 'images',
                                    'mask_dir': 'mask'})
    empty = tmp_path / 'empty'
    (empty / 'crack').mkdir(parents=True)
    with pytest.raises(ConversionError, match='no images found'):
        run(empty, tmp_path / 'o2')
    assert not (tmp_path / 'o2').exists()
