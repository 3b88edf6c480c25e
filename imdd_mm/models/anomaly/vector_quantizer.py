# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Vector quantisation with a straight-through estimator (VQ-VAE, van den
Oord et al. 2017), shared by the DMAD-style models.

The loss is the codebook term ``||sg[z] - q||^2`` plus ``commitment`` x
``||z - sg[q]||^2`` (mean squared errors), as in VQ-VAE and DMAD's official
VQ layer (commitment 0.25).
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def vector_quantize(z: Tensor, codebook: Tensor,
                    commitment: float = 0.25) -> Tuple[Tensor, Tensor]:
    """Replace every latent vector by its nearest code (L2).

    Args:
        z (Tensor): (B, D, h, w) latents.
        codebook (Tensor): (K, D) codes.
        commitment (float): Weight of the commitment term.

    Returns:
        tuple: ``zq`` (B, D, h, w), equal to the nearest codes in the
        forward pass with the gradient of ``z`` (straight-through), and the
        scalar VQ loss.
    """
    b, d, h, w = z.shape
    if codebook.shape[1] != d:
        raise ValueError(f'codebook has {codebook.shape[1]}-d codes, the '
                         f'latents are {d}-d')
    flat = z.permute(0, 2, 3, 1).reshape(-1, d)
    idx = torch.cdist(flat, codebook).argmin(dim=1)
    q = codebook[idx].view(b, h, w, d).permute(0, 3, 1, 2)
    loss = F.mse_loss(q, z.detach()) + commitment * F.mse_loss(
        z, q.detach())
    return z + (q - z).detach(), loss


class VectorQuantizer(nn.Module):
    """A learnable codebook of ``num_codes`` x ``dim`` and
    :func:`vector_quantize`.

    Args:
        num_codes (int): Codebook size ``K``.
        dim (int): Code size ``D``.
        commitment (float): Commitment weight. Defaults to 0.25.
        init (str): ``'uniform'``: U(-1/K, 1/K) (DMAD-PPDM's codebook, the
            VQ-VAE default); ``'normal'``: N(0, 1/D).
    """

    def __init__(self, num_codes: int, dim: int, commitment: float = 0.25,
                 init: str = 'uniform') -> None:
        super().__init__()
        if init == 'uniform':
            codes = torch.empty(num_codes, dim).uniform_(
                -1.0 / num_codes, 1.0 / num_codes)
        elif init == 'normal':
            codes = torch.randn(num_codes, dim) * dim**-0.5
        else:
            raise ValueError(f'unknown codebook init {init!r}')
        self.codebook = nn.Parameter(codes)
        self.commitment = float(commitment)

    def forward(self, z: Tensor) -> Tuple[Tensor, Tensor]:
        """(B, D, h, w) -> quantised (B, D, h, w) and the VQ loss."""
        return vector_quantize(z, self.codebook, self.commitment)
