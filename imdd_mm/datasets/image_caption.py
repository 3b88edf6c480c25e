# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Image-caption pairs for Stage-1 diffusion pretraining.

Two annotation formats are read:

1. ``captions.jsonl`` written by ``data_converters`` (one JSON object per
   line)::

       {"file_name": "MT_Crack/Imgs/exp1_num_1.jpg",
        "caption": "magnetic tile with a crack", "nouns": ["crack"],
        "source": "magnetic_tile", "split": "train", "is_normal": false,
        "width": 300, "height": 200}

   ``file_name`` is relative to the dataset root (the converter's
   ``--root``); the converters record no root, so the output can move. The
   image is ``<root>/<file_name>`` with ``root`` = ``img_root_override``,
   else the line's own ``image_root`` (older or hand-written files; a
   relative one is relative to ``data_prefix['img']`` when given, else to
   the folder of the jsonl file), else ``data_prefix['img']`` (joined with
   ``data_root`` as usual; with only ``data_root`` given, ``data_root``
   itself) - the dataset root given at train time. A line that none of
   these resolve is an error.

2. COCO json: either our converters' instances file, whose ``images[i]``
   carry ``caption`` (one sample per image), or a COCO-captions file whose
   ``annotations[j]`` carry ``caption`` and ``image_id`` (one sample per
   caption). Images are ``<data_prefix['img']>/<file_name>``.

Each data info holds ``img_path``, ``caption``, ``caption_nouns``,
``source``, ``is_normal``, ``img_id`` (and ``width``/``height`` when known),
which ``PackDetInputs(meta_keys=(..., 'caption'))`` carries into the
data sample's metainfo for the pretrainer.
"""
import json
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset
from mmdet.registry import DATASETS

_JSONL_REQUIRED = ('file_name', 'caption')


@DATASETS.register_module()
class ImageCaptionDataset(BaseDataset):
    """Images with captions, from ``captions.jsonl`` or a COCO json.

    Args:
        ann_file (str): ``*.jsonl`` (converter captions) or ``*.json``
            (COCO with caption fields). Relative paths join ``data_root``.
        split (str | Sequence[str], optional): Keep only these ``split``
            values (jsonl ``split`` field; COCO ``images[i]['split']``).
            None keeps everything. Defaults to None.
        sources (Sequence[str], optional): Keep only these ``source``
            values. Defaults to None (all).
        skip_empty_caption (bool): Drop samples whose caption is empty.
            Defaults to True.
        img_root_override (str, optional): jsonl only: the dataset root,
            taking precedence over ``data_prefix['img']`` and each line's
            ``image_root``. Defaults to None.
        **kwargs: ``data_root``, ``data_prefix=dict(img=...)``, ``pipeline``,
            ``test_mode``, ``indices`` ... as for
            :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(classes=())

    def __init__(self,
                 ann_file: str,
                 split: Optional[Union[str, Sequence[str]]] = None,
                 sources: Optional[Sequence[str]] = None,
                 skip_empty_caption: bool = True,
                 img_root_override: Optional[str] = None,
                 data_prefix: dict = dict(img=''),
                 **kwargs) -> None:
        self.img_root_override = img_root_override
        if isinstance(split, str):
            split = [split]
        self.split = None if split is None else set(split)
        self.sources = None if sources is None else set(sources)
        self.skip_empty_caption = skip_empty_caption
        super().__init__(
            ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    # ------------------------------------------------------------------
    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'ImageCaptionDataset: annotation file {self.ann_file} '
                'does not exist')
        if self.ann_file.endswith('.jsonl'):
            infos = self._load_jsonl(self.ann_file)
        elif self.ann_file.endswith('.json'):
            infos = self._load_coco(self.ann_file)
        else:
            raise ValueError(
                f'ImageCaptionDataset: {self.ann_file}: expected a .jsonl '
                '(captions) or .json (COCO) annotation file')
        data_list = []
        for info in infos:
            if self.split is not None and info.get('split') not in self.split:
                continue
            if (self.sources is not None
                    and info.get('source') not in self.sources):
                continue
            if self.skip_empty_caption and not info['caption'].strip():
                continue
            info['img_id'] = len(data_list)
            data_list.append(info)
        if not data_list:
            raise ValueError(
                f'ImageCaptionDataset: {self.ann_file} yields no samples '
                f'(split={sorted(self.split) if self.split else None}, '
                f'sources={sorted(self.sources) if self.sources else None}, '
                f'skip_empty_caption={self.skip_empty_caption})')
        return data_list

    def _img_path(self, *parts: str) -> str:
        prefix = self.data_prefix.get('img', '') or ''
        return osp.join(prefix, *[p for p in parts if p])

    def _load_jsonl(self, path: str) -> List[dict]:
        infos = []
        with open(path, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(
                        f'{path}:{lineno}: invalid JSON ({e.msg})') from None
                if not isinstance(rec, dict):
                    raise ValueError(f'{path}:{lineno}: expected a JSON '
                                     f'object, got {type(rec).__name__}')
                missing = [k for k in _JSONL_REQUIRED if k not in rec]
                if missing:
                    raise ValueError(
                        f'{path}:{lineno}: missing field(s) {missing}')
                caption = rec['caption']
                if caption is None:
                    caption = ''
                if not isinstance(caption, str):
                    raise ValueError(f'{path}:{lineno}: caption must be a '
                                     f'string, got {type(caption).__name__}')
                prefix = self.data_prefix.get('img') or ''
                root = self.img_root_override or rec.get('image_root')
                if root and not osp.isabs(root):
                    root = osp.join(prefix or osp.dirname(path), root)
                root = root or prefix
                if not root:
                    raise ValueError(
                        f'{path}:{lineno}: no image root for '
                        f'{rec["file_name"]!r}: give the dataset root (the '
                        "converter's --root) as data_root or "
                        'data_prefix=dict(img=ROOT)')
                info = dict(
                    img_path=osp.join(root, rec['file_name']),
                    caption=caption,
                    caption_nouns=list(rec.get('nouns') or []),
                    source=rec.get('source', ''),
                    split=rec.get('split'),
                    is_normal=bool(rec.get('is_normal', False)))
                for key in ('width', 'height'):
                    if rec.get(key) is not None:
                        info[key] = int(rec[key])
                infos.append(info)
        return infos

    def _load_coco(self, path: str) -> List[dict]:
        with open(path, encoding='utf-8') as f:
            try:
                coco = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f'{path}: invalid JSON ({e.msg} at line '
                                 f'{e.lineno})') from None
        if not isinstance(coco, dict) or 'images' not in coco:
            raise ValueError(f'{path}: not a COCO file (no "images" list)')
        images = {img['id']: img for img in coco['images']}

        def base_info(img: dict, caption: str, nouns=None) -> dict:
            if 'file_name' not in img:
                raise ValueError(f'{path}: image {img.get("id")} has no '
                                 'file_name')
            info = dict(
                img_path=self._img_path(img['file_name']),
                caption=caption or '',
                caption_nouns=list(nouns or img.get('caption_nouns') or []),
                source=img.get('source', ''),
                split=img.get('split'),
                is_normal=bool(img.get('is_normal', False)))
            for key in ('width', 'height'):
                if img.get(key) is not None:
                    info[key] = int(img[key])
            return info

        anns = coco.get('annotations') or []
        if anns and all('caption' in a for a in anns):
            infos = []
            for a in anns:
                if a['image_id'] not in images:
                    raise ValueError(
                        f'{path}: caption annotation {a.get("id")} refers '
                        f'to unknown image_id {a["image_id"]}')
                infos.append(base_info(images[a['image_id']], a['caption']))
            return infos
        if any('caption' in img for img in coco['images']):
            return [
                base_info(img, img.get('caption') or '')
                for img in coco['images']
            ]
        raise ValueError(
            f'{path}: COCO file has no caption fields (expected '
            'images[i]["caption"] or annotations[j]["caption"])')


@DATASETS.register_module()
class LatentCaptionDataset(BaseDataset):
    """Precomputed Stage-1 inputs written by
    ``tools/misc/precompute_stage1_latents.py``::

        DIR/index.json          {"format", "num_samples", "shards": [
                                  {"file": "shard-00000.pt", "num": N}, ...],
                                 "resolution", "latent_shape", ...}
        DIR/shard-00000.pt      dict(moments (N, 2C, h, w) fp16 VAE mean and
                                logvar, text_embed (N, D) fp16, image_embed
                                (N, D_clip) fp16, captions, img_paths)

    Each item is ``dict(latent, text_embed, image_embed, caption,
    img_path)`` (float32 tensors) for the pipeline
    ``[RandomFlipLatent, PackLatentInputs]``. Shards are memory-mapped and
    loaded on first use, one at a time per worker.

    Augmentations are limited to flips of the latent grid: the random
    resized crop, rotation and colour jitter of Table 8 change the image
    before the frozen encoders and cannot be applied to stored latents.

    Args:
        ann_file (str): ``index.json`` (relative to ``data_root``).
        **kwargs: As for :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(classes=())

    def __init__(self, ann_file: str, **kwargs) -> None:
        self._shard_cache = (None, None)
        super().__init__(ann_file=ann_file, **kwargs)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'LatentCaptionDataset: index file {self.ann_file} does not '
                'exist (run tools/misc/precompute_stage1_latents.py)')
        with open(self.ann_file, encoding='utf-8') as f:
            index = json.load(f)
        if not str(index.get('format', '')).startswith('imdd-stage1-latents'):
            raise ValueError(f'{self.ann_file}: not an imdd-mm latent index '
                             f'(format={index.get("format")!r})')
        root = osp.dirname(self.ann_file)
        data_list = []
        for shard in index['shards']:
            path = osp.join(root, shard['file'])
            for row in range(int(shard['num'])):
                data_list.append(dict(shard=path, row=row))
        if not data_list:
            raise ValueError(f'{self.ann_file}: no samples')
        return data_list

    def _shard(self, path: str) -> dict:
        cached_path, data = self._shard_cache
        if cached_path != path:
            import torch
            if not osp.isfile(path):
                raise FileNotFoundError(f'latent shard {path} is missing')
            data = torch.load(path, map_location='cpu', weights_only=True,
                              mmap=True)
            self._shard_cache = (path, data)
        return data

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        data = self._shard(info['shard'])
        row = info['row']
        return dict(
            latent=data['moments'][row].float(),
            text_embed=data['text_embed'][row].float(),
            image_embed=data['image_embed'][row].float(),
            caption=data['captions'][row],
            img_path=data['img_paths'][row],
            sample_idx=idx)

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_shard_cache'] = (None, None)  # never pickle mapped shards
        return state


def write_jsonl_atomic(records: Sequence[dict], path: str) -> None:
    """Write ``records`` as JSON lines to ``path`` atomically (helper for
    tests and tools that build caption files)."""
    tmp = f'{path}.tmp.{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8') as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + '\n')
    os.replace(tmp, path)
