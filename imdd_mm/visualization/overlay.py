# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Drawing of instance masks, boxes, labels and defect heat maps on images.

All functions take and return ``uint8`` RGB arrays of shape (H, W, 3) and
never modify their input. They are used by ``tools/infer.py``, the HTML
report and the demo.
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

#: A qualitative palette (RGB); class k uses ``PALETTE[k % len]``.
PALETTE = np.array([
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
    (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230),
    (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
], dtype=np.uint8)


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Convert any decoded image to (H, W, 3) uint8 RGB.

    Handles grayscale (H, W) or (H, W, 1), gray+alpha (H, W, 2), BGR, BGRA
    (alpha composited on black; an integer alpha is scaled by its dtype's
    maximum, a float alpha is taken in [0, 1]), and 16-bit or float data
    (colour channels rescaled by their own min/max, so that low-contrast
    16-bit sensor images stay visible).

    Args:
        image (np.ndarray): As returned by ``cv2.imread(...,
            cv2.IMREAD_UNCHANGED)`` (BGR channel order).

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3) or (img.ndim == 3
                                  and img.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(f'expected an (H, W[, 1|2|3|4]) image, got shape '
                         f'{img.shape}')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    alpha = None
    if img.ndim == 3 and img.shape[2] in (2, 4):  # gray+alpha, BGRA
        alpha = _alpha01(img[..., -1])
        img = img[..., 0] if img.shape[2] == 2 else img[..., :3]
    if img.dtype != np.uint8:
        # rescale the colour channels only: a 16-bit alpha channel (65535)
        # must not squash a low-contrast image to black
        img = img.astype(np.float32)
        lo, hi = float(img.min()), float(img.max())
        img = ((img - lo) / (hi - lo + 1e-12) * 255.0).round().astype(
            np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    else:
        img = img[..., ::-1]  # BGR -> RGB
    if alpha is not None:  # composite on black
        img = (img.astype(np.float32) * alpha[..., None]).round().astype(
            np.uint8)
    return np.ascontiguousarray(img)


def _alpha01(alpha: np.ndarray) -> np.ndarray:
    """An alpha channel of any dtype as float32 in [0, 1]."""
    if np.issubdtype(alpha.dtype, np.integer):
        return alpha.astype(np.float32) / float(np.iinfo(alpha.dtype).max)
    return np.clip(alpha.astype(np.float32), 0.0, 1.0)


def color_for(label: int) -> tuple:
    return tuple(int(c) for c in PALETTE[int(label) % len(PALETTE)])


def draw_instances(image: np.ndarray,
                   masks: Optional[np.ndarray] = None,
                   labels: Sequence[int] = (),
                   names: Sequence[str] = (),
                   scores: Optional[Sequence[float]] = None,
                   boxes: Optional[np.ndarray] = None,
                   alpha: float = 0.45) -> np.ndarray:
    """Blend instance masks, draw their outlines, boxes and captions.

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB.
        masks (np.ndarray, optional): (N, H, W) bool; masks of another
            size are resized to the image (nearest neighbour).
        labels (Sequence[int]): (N,) class indices (colour).
        names (Sequence[str]): Class names indexed by label.
        scores (Sequence[float], optional): (N,) scores shown after names.
        boxes (np.ndarray, optional): (M, 4) xyxy; M may differ from N
            (one box per connected component); box i uses label i when
            ``len(labels) == M``, else the first label.
        alpha (float): Mask opacity.

    Returns:
        np.ndarray: A new (H, W, 3) uint8 RGB image.
    """
    out = image.astype(np.float32).copy()
    labels = [int(v) for v in labels]
    if masks is not None:
        masks = _fit_masks(masks, image.shape[:2])
        for i, mask in enumerate(masks):
            color = np.array(color_for(labels[i] if i < len(labels) else 0),
                             np.float32)
            out[mask] = out[mask] * (1 - alpha) + color * alpha
    out = out.clip(0, 255).astype(np.uint8)
    if masks is not None:
        for i, mask in enumerate(masks):
            contours, _ = cv2.findContours(mask.astype(np.uint8),
                                           cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1,
                             color_for(labels[i] if i < len(labels) else 0),
                             1)
    if boxes is not None:
        scale = max(0.3, min(out.shape[:2]) / 400)
        for i, box in enumerate(np.asarray(boxes, dtype=np.float32)):
            label = labels[i] if len(labels) == len(boxes) else (
                labels[0] if labels else 0)
            color = color_for(label)
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            cv2.rectangle(out, (x1, y1), (x2, y2), color, 1)
            text = names[label] if 0 <= label < len(names) else str(label)
            if scores is not None and i < len(scores):
                text = f'{text} {float(scores[i]):.2f}'
            cv2.putText(out, text, (x1, max(10, y1 - 3)),
                        cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1,
                        cv2.LINE_AA)
    return out


def _fit_masks(masks: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """(N, h, w) masks as (N, H, W) bool; resized (nearest) when the
    masks were predicted or annotated at another resolution."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f'masks must be (N, H, W), got {masks.shape}')
    if len(masks) == 0:
        return np.zeros((0, *size), bool)
    if masks.shape[1:] == tuple(size):
        return masks
    return np.stack([
        cv2.resize(m.astype(np.uint8), (size[1], size[0]),
                   interpolation=cv2.INTER_NEAREST).astype(bool)
        for m in masks
    ])


def draw_heatmap(image: np.ndarray,
                 score_map: np.ndarray,
                 alpha: float = 0.5,
                 vmin: float = 0.0,
                 vmax: float = 1.0) -> np.ndarray:
    """Overlay a per-pixel defect score map as a JET heat map.

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB.
        score_map (np.ndarray): (H, W) float scores, resized to the image
            when their sizes differ.
        alpha (float): Heat-map opacity.
        vmin (float): Score shown as blue.
        vmax (float): Score shown as red.

    Returns:
        np.ndarray: A new (H, W, 3) uint8 RGB image.
    """
    scores = np.asarray(score_map, dtype=np.float32)
    if scores.shape != image.shape[:2]:
        scores = cv2.resize(scores, (image.shape[1], image.shape[0]),
                            interpolation=cv2.INTER_LINEAR)
    norm = ((scores - vmin) / max(vmax - vmin, 1e-12)).clip(0, 1)
    heat = cv2.applyColorMap((norm * 255).astype(np.uint8),
                             cv2.COLORMAP_JET)[..., ::-1]
    out = image.astype(np.float32) * (1 - alpha) + heat * alpha
    return out.clip(0, 255).astype(np.uint8)


def encode_png(image_rgb: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 RGB image."""
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(image_rgb[..., ::-1]))
    if not ok:
        raise RuntimeError('PNG encoding failed')
    return buf.tobytes()
