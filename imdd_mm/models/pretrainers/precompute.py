# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Run the frozen Stage-1 encoders once and store their outputs in shards.

Per image this stores the VAE posterior moments (mean and log-variance,
``(2C, h, w)``; the latent is still *sampled* at training time), the caption
embedding of the frozen text encoder and the frozen CLIP image embedding the
captioner's MLP consumes, all as fp16, so Stage-1 training runs only the
U-Net and the MLP (``IMDDDiffusionPretrainer(input_type='latent')`` with
``LatentCaptionDataset``). Layout: see
:class:`imdd_mm.datasets.LatentCaptionDataset`.

Images go through a deterministic pipeline (default: load, resize the whole
image to ``resolution`` x ``resolution``, pack); the random augmentations of
Table 8 other than flips are therefore not available in this mode (flips are
applied to the latent grid by ``RandomFlipLatent``).
"""
import json
import os
import os.path as osp
import shutil
from typing import List, Optional

import torch

INDEX_FORMAT = 'imdd-stage1-latents v1'


def default_precompute_pipeline(resolution: int) -> List[dict]:
    return [
        dict(type='LoadImageFromFile', color_type='color'),
        dict(type='Resize', scale=(resolution, resolution), keep_ratio=False),
        dict(
            type='PackDetInputs',
            meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                       'caption', 'source'))
    ]


def _save_atomic(obj, path: str) -> None:
    tmp = f'{path}.tmp.{os.getpid()}'
    torch.save(obj, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def precompute_stage1_latents(cfg,
                              out_dir: str,
                              shard_size: int = 1024,
                              batch_size: int = 16,
                              num_workers: int = 0,
                              device: str = 'cpu',
                              pipeline: Optional[List[dict]] = None,
                              overwrite: bool = False) -> dict:
    """Encode ``cfg.train_dataloader.dataset`` with the frozen encoders of
    ``cfg.model`` into ``out_dir``.

    Args:
        cfg (Config): A Stage-1 config (image mode).
        out_dir (str): Output folder (must be new unless ``overwrite``).
        shard_size (int): Samples per shard. Defaults to 1024.
        batch_size (int): Encoder batch size. Defaults to 16.
        num_workers (int): Data-loading workers. Defaults to 0.
        device (str): Defaults to 'cpu'.
        pipeline (list[dict], optional): Data pipeline; defaults to
            ``cfg.precompute_pipeline`` or :func:`default_precompute_pipeline`
            at ``cfg.resolution``.
        overwrite (bool): Replace an existing ``out_dir``.

    Returns:
        dict: The index written to ``out_dir/index.json``.
    """
    import copy

    from mmengine.dataset import pseudo_collate
    from torch.utils.data import DataLoader

    from imdd_mm.utils import register_all_modules
    from mmdet.registry import DATASETS, MODELS
    from ..backbones.diffusion_builders import build_vae
    register_all_modules()
    if osp.exists(out_dir) and not overwrite:
        raise FileExistsError(f'{out_dir} exists; pass overwrite=True')
    mcfg = cfg.model
    resolution = int(cfg.get('resolution', 512))
    if pipeline is None:
        pipeline = cfg.get('precompute_pipeline', None) or \
            default_precompute_pipeline(resolution)
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg['pipeline'] = pipeline
    dataset = DATASETS.build(ds_cfg)

    vae_cfg = dict(mcfg.vae)
    vae_cfg['drop_decoder'] = True
    vae = build_vae(vae_cfg).to(device).eval().requires_grad_(False)
    text_encoder = MODELS.build(mcfg.text_encoder).to(device).eval()
    captioner = MODELS.build(mcfg.captioner).to(device).eval()
    preprocessor = MODELS.build(
        mcfg.get('data_preprocessor', None) or dict(
            type='ImgDataPreprocessor',
            mean=[127.5] * 3,
            std=[127.5] * 3,
            bgr_to_rgb=True)).to(device)

    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=pseudo_collate)

    out_dir = osp.abspath(out_dir)
    tmp_dir = osp.join(
        osp.dirname(out_dir), f'.{osp.basename(out_dir)}.tmp{os.getpid()}')
    if osp.exists(tmp_dir):
        shutil.rmtree(tmp_dir)
    os.makedirs(tmp_dir)
    shards, buf = [], dict(
        moments=[], text_embed=[], image_embed=[], captions=[], img_paths=[])
    latent_shape = None

    def flush():
        if not buf['captions']:
            return
        name = f'shard-{len(shards):05d}.pt'
        shard = dict(
            moments=torch.cat(buf['moments']).half(),
            text_embed=torch.cat(buf['text_embed']).half(),
            image_embed=torch.cat(buf['image_embed']).half(),
            captions=list(buf['captions']),
            img_paths=list(buf['img_paths']))
        _save_atomic(shard, osp.join(tmp_dir, name))
        shards.append(dict(file=name, num=len(shard['captions'])))
        for v in buf.values():
            v.clear()

    try:
        for batch in loader:
            data = preprocessor(batch, False)
            img = data['inputs']
            metas = [ds.metainfo for ds in data['data_samples']]
            captions = [str(m.get('caption', '')) for m in metas]
            dist = vae.encode(img.to(next(vae.parameters()).dtype)
                              ).latent_dist
            moments = torch.cat([dist.mean, dist.logvar], 1).float().cpu()
            latent_shape = list(moments.shape[1:])
            text = text_encoder.encode(captions).float().cpu()
            clip = captioner.encode_image(img).float().cpu()
            for i in range(len(captions)):
                buf['moments'].append(moments[i:i + 1])
                buf['text_embed'].append(text[i:i + 1])
                buf['image_embed'].append(clip[i:i + 1])
                buf['captions'].append(captions[i])
                buf['img_paths'].append(str(metas[i].get('img_path', '')))
                if len(buf['captions']) >= shard_size:
                    flush()
        flush()
        if not shards:
            raise ValueError('the dataset yielded no samples')
        index = dict(
            format=INDEX_FORMAT,
            num_samples=sum(s['num'] for s in shards),
            shards=shards,
            resolution=resolution,
            latent_shape=latent_shape,
            text_dim=int(text.shape[1]),
            image_embed_dim=int(clip.shape[1]),
            text_encoder=str(mcfg.text_encoder),
            vae=str(mcfg.vae),
            note='moments = VAE posterior mean and logvar (unscaled); '
            'augmentations limited to latent flips')
        with open(osp.join(tmp_dir, 'index.json'), 'w',
                  encoding='utf-8') as f:
            json.dump(index, f, indent=2)
            f.write('\n')
        if osp.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp_dir, out_dir)
    finally:
        if osp.exists(tmp_dir):
            shutil.rmtree(tmp_dir)
    return index
