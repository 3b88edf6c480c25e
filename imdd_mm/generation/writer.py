# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Write generated images and their manifest to a folder.

Layout of ``OUT``::

    OUT/000000.png ...            RGB PNGs, one per (prompt, copy)
    OUT/generation.json           settings + one entry per image:
                                  {"file", "index", "prompt", "seed"}

Image ``index = p * num + k`` is copy ``k`` of prompt ``p`` and uses seed
``seed + index``; with the same settings, a rerun (or any subset of it)
reproduces the same files. Every file is written atomically (temporary
file, then ``os.replace``), the manifest last.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

MANIFEST = 'generation.json'


def read_prompt_file(path: str) -> List[str]:
    """One prompt per line; blank lines and lines starting with '#' are
    skipped."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'prompt file {path} does not exist')
    with open(path, encoding='utf-8') as f:
        prompts = [
            line.strip() for line in f
            if line.strip() and not line.lstrip().startswith('#')
        ]
    if not prompts:
        raise ValueError(f'{path}: no prompts (one per line expected)')
    return prompts


def plan_generation(prompts: Sequence[str], num_per_prompt: int,
                    seed: int) -> List[Dict]:
    """``[{'index', 'prompt', 'seed', 'file'}]`` for every image."""
    if num_per_prompt < 1:
        raise ValueError(f'num must be >= 1, got {num_per_prompt}')
    if not prompts:
        raise ValueError('no prompts given')
    plan = []
    for p, prompt in enumerate(prompts):
        for k in range(num_per_prompt):
            index = p * num_per_prompt + k
            plan.append(
                dict(
                    index=index,
                    prompt=prompt,
                    seed=int(seed) + index,
                    file=f'{index:06d}.png'))
    return plan


def _atomic_bytes(path: str, data: bytes) -> None:
    tmp = f'{path}.tmp.{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)


def write_png(path: str, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB image as PNG, atomically."""
    import cv2
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise IOError(f'could not encode {path}')
    _atomic_bytes(path, buf.tobytes())


def generate_to_dir(pipeline,
                    prompts: Sequence[str],
                    num_per_prompt: int,
                    out_dir: str,
                    seed: int = 0,
                    height: int = 512,
                    width: int = 512,
                    num_inference_steps: int = 50,
                    guidance_scale: float = 7.5,
                    scheduler: str = 'ddim',
                    eta: float = 0.0,
                    batch_size: int = 8,
                    extra: Optional[dict] = None) -> dict:
    """Generate ``num_per_prompt`` images per prompt into ``out_dir``.

    Args:
        pipeline (DefectGenerationPipeline): The sampler.
        prompts, num_per_prompt, seed: See :func:`plan_generation`.
        out_dir (str): Created if needed.
        height, width, num_inference_steps, guidance_scale, scheduler, eta,
            batch_size: Passed to the pipeline.
        extra (dict, optional): More settings recorded in the manifest
            (config, checkpoint, ...).

    Returns:
        dict: The manifest written to ``out_dir/generation.json``.
    """
    plan = plan_generation(prompts, num_per_prompt, seed)
    os.makedirs(out_dir, exist_ok=True)
    settings = dict(
        height=height,
        width=width,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        scheduler=scheduler,
        eta=eta,
        seed=int(seed),
        num_per_prompt=num_per_prompt,
        batch_size=batch_size)
    settings.update(extra or {})
    for start in range(0, len(plan), batch_size):
        chunk = plan[start:start + batch_size]
        images = pipeline([c['prompt'] for c in chunk],
                          [c['seed'] for c in chunk],
                          height=height,
                          width=width,
                          num_inference_steps=num_inference_steps,
                          guidance_scale=guidance_scale,
                          scheduler=scheduler,
                          eta=eta,
                          batch_size=batch_size)
        for c, img in zip(chunk, images):
            write_png(osp.join(out_dir, c['file']), img)
    manifest = dict(settings=settings, prompts=list(prompts), images=plan)
    _atomic_bytes(
        osp.join(out_dir, MANIFEST),
        (json.dumps(manifest, indent=2, ensure_ascii=False) +
         '\n').encode('utf-8'))
    return manifest
