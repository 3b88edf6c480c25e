# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Frechet Inception Distance (FID) and Inception Score (IS), paper §5.2.

The Inception network is torchvision's ``inception_v3`` built with
``weights=None`` and loaded from a **local** state-dict file (nothing is
downloaded). With torchvision's ImageNet weights (``inception_v3_google``,
saved with ``torch.save(model.state_dict(), path)``) FID and IS follow
their usual definitions; note that the widely quoted FID numbers (and
presumably the paper's) use the TF-ported "pt_inception-2015-12-05"
weights, whose values differ slightly from torchvision's, so compare FIDs
only when they were computed with the same weights file. Without a file the
network keeps random weights (tests only; the numbers are then meaningless
in absolute terms but FID(X, X) = 0 and IS >= 1 still hold).

Images are RGB, either uint8 (N, H, W, 3) arrays / (N, 3, H, W) tensors or
float tensors in [0, 1]; they are resized to 299 x 299 and mapped to
[-1, 1] (the input range of the Google Inception weights; torchvision's
``transform_input=True`` performs the same mapping from ImageNet-normalised
input).

- FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}) on the 2048-d pool
  features (Heusel et al. 2017).
- IS = exp(E_x KL(p(y|x) || p(y))) over the 1000-way softmax, mean and std
  over ``splits`` (Salimans et al. 2016).
"""
import os
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ImageBatch = Union[np.ndarray, torch.Tensor, Sequence[np.ndarray]]


def build_inception(weights_path: Optional[str] = None) -> nn.Module:
    """torchvision Inception-v3 (with aux logits), optionally loaded from a
    local state-dict file.

    Args:
        weights_path (str, optional): A ``torch.save``d state dict (or a
            checkpoint dict with a ``state_dict`` entry). None keeps random
            weights.

    Returns:
        nn.Module: The network in eval mode.

    Raises:
        FileNotFoundError / RuntimeError: naming the file when it is missing
            or does not fit the architecture.
    """
    from torchvision.models import inception_v3
    model = inception_v3(
        weights=None, aux_logits=True, init_weights=False,
        transform_input=False)
    if weights_path is not None:
        if not os.path.isfile(weights_path):
            raise FileNotFoundError(
                f'Inception weights file {weights_path} does not exist')
        state = torch.load(
            weights_path, map_location='cpu', weights_only=True)
        if isinstance(state, dict) and 'state_dict' in state:
            state = state['state_dict']
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise RuntimeError(
                f'{weights_path}: not a torchvision inception_v3 '
                f'(aux_logits=True) state dict: {e}') from None
    return model.eval().requires_grad_(False)


class InceptionExtractor(nn.Module):
    """Pool features (N, 2048) and logits (N, 1000) of Inception-v3.

    Args:
        weights_path (str, optional): See :func:`build_inception`.
        resize (int): Input side after bilinear resizing. Defaults to 299.
    """

    def __init__(self,
                 weights_path: Optional[str] = None,
                 resize: int = 299) -> None:
        super().__init__()
        self.net = build_inception(weights_path)
        self.resize = resize

    @staticmethod
    def to_tensor(images: ImageBatch) -> torch.Tensor:
        """Images (any accepted layout) to float (N, 3, H, W) in [0, 1]."""
        if isinstance(images, (list, tuple)):
            images = np.stack([np.asarray(im) for im in images])
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images))
            if images.ndim == 4 and images.shape[-1] in (1, 3):
                images = images.permute(0, 3, 1, 2)
        if images.ndim != 4:
            raise ValueError('images must be a batch (N, H, W, 3) or '
                             f'(N, 3, H, W), got shape {tuple(images.shape)}')
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if images.shape[1] != 3:
            raise ValueError('images must have 1 or 3 channels, got shape '
                             f'{tuple(images.shape)}')
        if images.dtype == torch.uint8:
            return images.float() / 255.
        return images.float().clamp(0, 1)

    @torch.no_grad()
    def forward(self, images: ImageBatch) -> Tuple[torch.Tensor,
                                                   torch.Tensor]:
        x = self.to_tensor(images).to(next(self.net.parameters()).device)
        if x.shape[-2:] != (self.resize, self.resize):
            x = F.interpolate(
                x, size=(self.resize, self.resize), mode='bilinear',
                align_corners=False)
        x = x * 2 - 1
        net = self.net
        feats = {}
        handle = net.avgpool.register_forward_hook(
            lambda m, i, o: feats.__setitem__('pool', o))
        try:
            logits = net(x)
        finally:
            handle.remove()
        if not isinstance(logits, torch.Tensor):  # train-mode namedtuple
            logits = logits.logits
        return feats['pool'].flatten(1).double(), logits.double()


def extract_inception(images: Iterable[ImageBatch],
                      extractor: InceptionExtractor
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """Run ``extractor`` over an iterable of batches.

    Returns:
        tuple: pool features (N, 2048) and logits (N, 1000) as float64.
    """
    pools: List[np.ndarray] = []
    logits: List[np.ndarray] = []
    for batch in images:
        p, lg = extractor(batch)
        pools.append(p.cpu().numpy())
        logits.append(lg.cpu().numpy())
    if not pools:
        raise ValueError('no images given')
    return np.concatenate(pools), np.concatenate(logits)


def feature_statistics(features: np.ndarray) -> Tuple[np.ndarray,
                                                       np.ndarray]:
    """Mean (D,) and covariance (D, D) of (N, D) features (N >= 2)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError('FID needs at least 2 feature vectors, got shape '
                         f'{features.shape}')
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray,
                     sigma1: np.ndarray,
                     mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    The trace of the matrix square root is computed from the eigenvalues of
    ``sqrt(S1) S2 sqrt(S1)`` (symmetric PSD, so the result is real and
    exact also for rank-deficient covariances, i.e. fewer images than
    feature dimensions); tiny negative eigenvalues from round-off are
    clipped to zero.
    """
    from scipy import linalg
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError('mean/covariance shapes differ: '
                         f'{mu1.shape} vs {mu2.shape}, '
                         f'{sigma1.shape} vs {sigma2.shape}')
    diff = mu1 - mu2
    # sqrt of sigma1 via its (symmetric) eigen-decomposition
    w1, v1 = linalg.eigh((sigma1 + sigma1.T) / 2)
    sqrt1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    inner = sqrt1 @ sigma2 @ sqrt1
    w = linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = np.sqrt(np.clip(w, 0, None)).sum()
    fid = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean
    # round-off can make FID(X, X) a tiny negative number
    return float(max(fid, 0.0))


def compute_fid(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID between two (N, D) feature sets.

    With fewer samples than dimensions (N1 or N2 < D) the covariances have
    low rank and the exact value is computed in sample space: with centred
    features A_i and c = (N1 - 1)(N2 - 1), the eigenvalues of S1 S2 are the
    squared singular values of A1 A2^T / sqrt(c), so
    Tr((S1 S2)^{1/2}) = ||A1 A2^T||_* / sqrt(c) (an N1 x N2 SVD instead of
    D x D eigen-decompositions). Otherwise :func:`frechet_distance` is used.
    """
    f1 = np.asarray(features1, dtype=np.float64)
    f2 = np.asarray(features2, dtype=np.float64)
    for f in (f1, f2):
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError('FID needs at least 2 feature vectors, got '
                             f'shape {f.shape}')
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f'feature dims differ: {f1.shape} vs {f2.shape}')
    n1, n2, d = f1.shape[0], f2.shape[0], f1.shape[1]
    if min(n1, n2) >= d:
        mu1, s1 = feature_statistics(f1)
        mu2, s2 = feature_statistics(f2)
        return frechet_distance(mu1, s1, mu2, s2)
    mu1, mu2 = f1.mean(0), f2.mean(0)
    a1, a2 = f1 - mu1, f2 - mu2
    tr1 = (a1 * a1).sum() / (n1 - 1)
    tr2 = (a2 * a2).sum() / (n2 - 1)
    sv = np.linalg.svd(a1 @ a2.T, compute_uv=False)
    tr_covmean = sv.sum() / np.sqrt((n1 - 1) * (n2 - 1))
    diff = mu1 - mu2
    fid = diff @ diff + tr1 + tr2 - 2 * tr_covmean
    return float(max(fid, 0.0))


def inception_score(logits: np.ndarray,
                    splits: int = 10) -> Tuple[float, float]:
    """Inception Score from (N, C) logits.

    Args:
        logits (np.ndarray): Pre-softmax class scores.
        splits (int): Number of splits (the usual 10; reduced to N when
            fewer images are given).

    Returns:
        tuple[float, float]: Mean and standard deviation over the splits.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] < 1:
        raise ValueError(f'logits must be (N, C), got {logits.shape}')
    logits = logits - logits.max(1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(1, keepdims=True)
    splits = max(1, min(splits, probs.shape[0]))
    scores = []
    for part in np.array_split(probs, splits):
        py = part.mean(0, keepdims=True)
        kl = (part * (np.log(np.clip(part, 1e-30, None)) -
                      np.log(np.clip(py, 1e-30, None)))).sum(1)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


class FIDISCalculator:
    """FID of generated vs. real images and IS of generated images.

    Args:
        weights_path (str, optional): Local Inception-v3 state-dict file
            (random weights when None: tests only).
        batch_size (int): Images per Inception forward. Defaults to 32.
        device (str | torch.device): Defaults to 'cpu'.
        splits (int): IS splits. Defaults to 10.
    """

    def __init__(self,
                 weights_path: Optional[str] = None,
                 batch_size: int = 32,
                 device: Union[str, torch.device] = 'cpu',
                 splits: int = 10) -> None:
        self.extractor = InceptionExtractor(weights_path).to(device)
        self.batch_size = batch_size
        self.splits = splits

    def _batches(self, images: Sequence[np.ndarray]):
        for i in range(0, len(images), self.batch_size):
            chunk = images[i:i + self.batch_size]
            yield [np.asarray(im) for im in chunk] if isinstance(
                chunk, (list, tuple)) else chunk

    def features(self, images: Sequence[np.ndarray]
                 ) -> Tuple[np.ndarray, np.ndarray]:
        """Pool features and logits of RGB images (list of (H, W, 3) uint8
        arrays of one size, or an (N, H, W, 3) array)."""
        return extract_inception(self._batches(images), self.extractor)

    def __call__(self, generated: Sequence[np.ndarray],
                 real: Optional[Sequence[np.ndarray]] = None) -> dict:
        """Returns ``dict(IS=..., IS_std=...[, FID=...])``."""
        gen_pool, gen_logits = self.features(generated)
        is_mean, is_std = inception_score(gen_logits, self.splits)
        out = dict(IS=is_mean, IS_std=is_std, num_generated=len(gen_pool))
        if real is not None:
            real_pool, _ = self.features(real)
            out['FID'] = compute_fid(gen_pool, real_pool)
            out['num_real'] = len(real_pool)
        return out


def load_images(paths: Sequence[str],
                size: Optional[int] = None) -> List[np.ndarray]:
    """RGB uint8 images from files, optionally resized to ``size`` x
    ``size`` so they can be batched."""
    import cv2
    out = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f'{p}: cannot be read as an image')
        if size is not None:
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        out.append(img[..., ::-1].copy())
    return out


def load_image_folder(folder: str,
                      size: Optional[int] = None,
                      exts: Sequence[str] = ('.png', '.jpg', '.jpeg', '.bmp',
                                             '.tif', '.tiff')
                      ) -> List[np.ndarray]:
    """RGB uint8 images of a folder (sorted, recursive), optionally resized
    to ``size`` x ``size`` so they can be batched."""
    paths = []
    for root, _, files in os.walk(folder):
        paths += [
            os.path.join(root, f) for f in files
            if f.lower().endswith(tuple(exts))
        ]
    paths.sort()
    if not paths:
        raise FileNotFoundError(f'no images found under {folder}')
    return load_images(paths, size)
