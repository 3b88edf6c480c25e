# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""FPN pixel decoder that also returns its multi-scale outputs, so that it can
feed Mask2Former's masked-attention transformer decoder (paper §4.6: "The
pixel decoder implements Feature Pyramid Network (FPN)")."""
from typing import List, Optional, Sequence, Tuple

import torch.nn.functional as F
from mmdet.models.layers.pixel_decoder import PixelDecoder
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import caffe2_xavier_init
from torch import Tensor


@MODELS.register_module()
class MultiScaleFPNPixelDecoder(PixelDecoder):
    """mmdet's FPN ``PixelDecoder`` returning Mask2Former's interface.

    mmdet's ``PixelDecoder`` (MaskFormer) returns only the mask features and
    the raw last backbone level; Mask2Former's transformer decoder needs
    ``num_outs`` feature maps of ``feat_channels`` channels, from low to high
    resolution. This subclass keeps mmdet's layers (lateral 1x1 convs, 3x3
    output convs, GroupNorm, top-down nearest upsampling) and also returns the
    top-down outputs of the ``num_outs`` coarsest levels.

    With the diffusion backbone's maps ``s8, s16, s32, s64`` (channels 320,
    640, 1280, 1280) the outputs are:

    - ``mask_feature``: (B, out_channels, H/8, W/8) from the finest level;
    - ``multi_scale_features``: ``[s64, s32, s16]`` outputs, each
      (B, feat_channels, H/s, W/s), low to high resolution.

    Args:
        in_channels (Sequence[int]): Channels of the input maps, high to low
            resolution.
        feat_channels (int): FPN channels. Defaults to 256.
        out_channels (int): Channels of the mask features. Defaults to 256.
        num_outs (int): Number of multi-scale outputs for the transformer
            decoder (coarsest levels). Defaults to 3.
        norm_cfg (dict): Normalisation config. Defaults to GN with 32 groups.
        act_cfg (dict): Activation config. Defaults to ReLU.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 feat_channels: int = 256,
                 out_channels: int = 256,
                 num_outs: int = 3,
                 norm_cfg: ConfigType = dict(type='GN', num_groups=32),
                 act_cfg: ConfigType = dict(type='ReLU'),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            in_channels=list(in_channels),
            feat_channels=feat_channels,
            out_channels=out_channels,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            init_cfg=init_cfg)
        if not 1 <= num_outs <= len(in_channels):
            raise ValueError(f'num_outs={num_outs} must be in [1, '
                             f'{len(in_channels)}] (number of input levels)')
        self.num_outs = num_outs

    def init_weights(self) -> None:
        """Xavier-initialise every conv (mmdet's version skips the last
        lateral/output pair)."""
        for lateral, output in zip(self.lateral_convs, self.output_convs):
            caffe2_xavier_init(lateral.conv, bias=0)
            caffe2_xavier_init(output.conv, bias=0)
        caffe2_xavier_init(self.mask_feature, bias=0)
        caffe2_xavier_init(self.last_feat_conv.conv, bias=0)

    def forward(self,
                feats: List[Tensor],
                batch_img_metas: Optional[List[dict]] = None
                ) -> Tuple[Tensor, List[Tensor]]:
        """Top-down FPN pass.

        Args:
            feats (list[Tensor]): Input maps, high to low resolution, each
                (B, C_l, H_l, W_l).
            batch_img_metas (list[dict], optional): Unused.

        Returns:
            tuple: ``mask_feature`` (B, out_channels, H_0, W_0) and the list
            of ``num_outs`` maps (B, feat_channels, H_l, W_l), low to high
            resolution.
        """
        if len(feats) != self.num_inputs:
            raise ValueError(f'expected {self.num_inputs} feature maps, got '
                             f'{len(feats)}')
        y = self.last_feat_conv(feats[-1])
        outs = [y]
        for i in range(self.num_inputs - 2, -1, -1):
            cur_feat = self.lateral_convs[i](feats[i])
            y = cur_feat + F.interpolate(
                y, size=cur_feat.shape[-2:], mode='nearest')
            y = self.output_convs[i](y)
            outs.append(y)
        mask_feature = self.mask_feature(y)
        return mask_feature, outs[:self.num_outs]
