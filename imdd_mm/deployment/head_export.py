# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""ONNX-exportable views of the Stage-2 model.

The trainable Stage-2 head (pixel decoder + transformer decoder +
open-vocabulary classifier) is wrapped so that the text embeddings of the
vocabulary are an *input*: the deployed graph classifies against any
defect names, whose embeddings the application computes once with the
same text encoder (``encode_names``). The frozen diffusion features come
from the PyTorch backbone (or a feature cache); the backbone wrapper below
is the attempt at exporting it too.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from torch import Tensor


class Stage2HeadForExport(nn.Module):
    """``OVMask2FormerHead.predict`` with the text embeddings as an input.

    Args:
        head (nn.Module): A built ``OVMask2FormerHead`` (eval mode).
        batch_input_shape (tuple[int, int]): Padded network input size
            (H, W); the mask logits are upsampled to it, as in ``predict``.

    Inputs:
        ``*feats``: the backbone maps of ``feature_keys``, high to low
        resolution, (B, C_l, H/s_l, W/s_l); ``text_embeddings`` (K, D), any
        K >= 1 (normalised inside).

    Outputs:
        ``cls_logits`` (B, Q, K+1) (last = no object) and ``mask_logits``
        (B, Q, H, W).
    """

    def __init__(self, head: nn.Module,
                 batch_input_shape: Tuple[int, int]) -> None:
        super().__init__()
        self.head = head
        self.batch_input_shape = tuple(int(s) for s in batch_input_shape)

    def forward(self, *inputs: Tensor) -> Tuple[Tensor, Tensor]:
        *feats, text_embeddings = inputs
        head = self.head
        saved = head.class_embeddings
        head.class_embeddings = F.normalize(text_embeddings.float(), dim=-1)
        try:
            meta = dict(batch_input_shape=self.batch_input_shape,
                        img_shape=self.batch_input_shape,
                        pad_shape=self.batch_input_shape)
            samples = [
                DetDataSample(metainfo=meta) for _ in range(feats[0].shape[0])
            ]
            cls_logits, mask_logits = head.predict(list(feats), samples)
        finally:
            head.class_embeddings = saved
        return cls_logits, mask_logits


class _StaticNoise:
    """Within the block, the backbone's fixed noise is looked up with
    plain-int shapes: under tracing the shapes are traced values, which
    would miss the noise cache and put a ``torch.Generator`` (not
    exportable) in the graph; with ints the cached noise is a constant."""

    def __init__(self, backbone: nn.Module) -> None:
        self.backbone = backbone

    def __enter__(self):
        original = type(self.backbone).fixed_noise.__get__(self.backbone)
        self.backbone.fixed_noise = lambda shape, device, dtype: original(
            tuple(int(s) for s in shape), device, dtype)
        return self

    def __exit__(self, *exc) -> None:
        del self.backbone.fixed_noise


class DiffusionBackboneForExport(nn.Module):
    """Image -> diffusion feature maps: the implicit captioner (or the
    model's fixed conditioning) and the frozen VAE + U-Net.

    Args:
        model (nn.Module): A built ``IMDDMask2Former`` (eval mode).

    Inputs:
        ``img`` (B, 3, H, W) in [-1, 1].

    Outputs:
        The maps of ``model.feature_keys``, high to low resolution.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, img: Tensor) -> List[Tensor]:
        with _StaticNoise(self.model.backbone):
            return list(self.model.extract_feat(img, None))


class DiffusionFeaturesForExport(nn.Module):
    """(image, conditioning) -> diffusion feature maps: the frozen VAE +
    U-Net alone, the conditioning (B, 1, D) computed outside (captioner,
    caption embedding or zeros).

    Args:
        model (nn.Module): A built ``IMDDMask2Former`` (eval mode).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, img: Tensor, cond: Tensor) -> List[Tensor]:
        with _StaticNoise(self.model.backbone):
            feats = self.model.backbone(img, cond)
        return [feats[k] for k in self.model.feature_keys]


def feature_shapes(model: nn.Module, batch_input_shape: Sequence[int],
                   batch_size: int = 1) -> List[Tuple[int, ...]]:
    """Shapes of the backbone maps that feed the head for an input size.

    Args:
        model (nn.Module): A built ``IMDDMask2Former``.
        batch_input_shape (Sequence[int]): Padded input (H, W).
        batch_size (int): B.

    Returns:
        list[tuple]: (B, C, H/s, W/s) per ``feature_keys`` entry.
    """
    backbone = model.backbone
    out_channels = getattr(backbone, 'out_channels', None)
    out_strides = getattr(backbone, 'out_strides', None)
    if not isinstance(out_channels, dict) or not isinstance(
            out_strides, dict):
        raise ValueError('the backbone has no out_channels/out_strides '
                         'dicts; cannot derive the feature shapes')
    h, w = (int(s) for s in batch_input_shape)
    shapes = []
    for key in model.feature_keys:
        stride = int(out_strides[key])
        if h % stride or w % stride:
            raise ValueError(f'input size {(h, w)} is not a multiple of '
                             f'the stride {stride} of {key!r}')
        shapes.append((batch_size, int(out_channels[key]), h // stride,
                       w // stride))
    return shapes


@torch.no_grad()
def export_head(model: nn.Module, out_file: str,
                batch_input_shape: Sequence[int], num_names: int = 3,
                opset: int = 17) -> List[str]:
    """Export the Stage-2 head of ``model`` to ONNX.

    Args:
        model (nn.Module): A built ``IMDDMask2Former`` in eval mode with a
            vocabulary (its size only fixes the example input; K stays
            dynamic).
        out_file (str): Output ``.onnx`` path.
        batch_input_shape (Sequence[int]): Padded input (H, W).
        num_names (int): K of the example text embeddings.
        opset (int): ONNX opset.

    Returns:
        list[str]: The graph's input names.
    """
    head = model.panoptic_head
    wrapper = Stage2HeadForExport(head, tuple(batch_input_shape)).eval()
    shapes = feature_shapes(model, batch_input_shape)
    gen = torch.Generator().manual_seed(0)
    device = next(head.parameters()).device
    feats = [torch.randn(s, generator=gen).to(device) for s in shapes]
    text = torch.randn(num_names, head.text_dim, generator=gen).to(device)
    names = [f'feat_{k}' for k in model.feature_keys] + ['text_embeddings']
    dynamic = {'text_embeddings': {0: 'num_names'},
               'cls_logits': {2: 'num_names_plus_void'}}
    torch.onnx.export(
        wrapper, tuple(feats) + (text, ),
        out_file,
        input_names=names,
        output_names=['cls_logits', 'mask_logits'],
        dynamic_axes=dynamic,
        opset_version=opset,
        dynamo=False)
    return names
