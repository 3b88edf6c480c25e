# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Flip test-time augmentation of ``IMDDMask2Former``.

mmdet's ``DetTTAModel`` merges post-processed boxes and refuses instance
masks. Like Mask2Former's semantic TTA, this model merges *before*
post-processing: the views' outputs are flipped back and averaged, then
post-processed once.
"""
from typing import Dict, List

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.model import BaseTTAModel
from torch import Tensor

from .postprocess import defect_score_map

#: flip direction -> tensor dims of a (..., H, W) map to flip back
_FLIP_DIMS = {'horizontal': (-1, ), 'vertical': (-2, ),
              'diagonal': (-2, -1)}


def unflip(maps: Tensor, meta: Dict) -> Tensor:
    """Undo the flip recorded in ``meta`` (``flip``, ``flip_direction``) on
    (..., H, W) maps."""
    if not meta.get('flip', False):
        return maps
    direction = meta.get('flip_direction')
    if direction not in _FLIP_DIMS:
        raise ValueError(f'unknown flip_direction {direction!r} in '
                         f'{meta.get("img_path", "a sample")}')
    return maps.flip(_FLIP_DIMS[direction])


@MODELS.register_module()
class IMDDFlipTTAModel(BaseTTAModel):
    """Test-time augmentation over flipped views for ``IMDDMask2Former``.

    Every view runs the wrapped model up to its raw outputs
    (``predict_logits``: class logits (Q, K+1), mask logits (Q, H, W) at
    the original size); the mask logits are flipped back. Per image the
    merge then averages

    - the mask logits per query,
    - the class probabilities per query (softmax, void included; passed on
      as their log so that the softmax of post-processing returns them),
    - the defect score maps ``max_q max_k p_qk sigmoid(m_q)`` of the views
      (query-order free),

    and post-processes once (instances, semantic map, image label) with
    the wrapped model's ``_postprocess_single``. The output sample is the
    un-flipped view's, so its ground truth is untouched. Query ``q`` of a
    flipped view is averaged with query ``q`` of the others: queries are
    learned embeddings shared by all views, so the match is by identity
    (an approximation, as for any per-query merge).

    Args:
        module (dict): The ``IMDDMask2Former`` config (set by
            ``tools/test.py --tta``).
        data_preprocessor (dict, optional): Unused; the wrapped model's
            preprocessor prepares every view.
    """

    @torch.no_grad()
    def test_step(self, data) -> List[DetDataSample]:
        """Predict a batch of images given as TTA views.

        Args:
            data (dict): ``inputs`` and ``data_samples``, each a list over
                views of lists over the batch (mmcv's ``TestTimeAug`` after
                ``pseudo_collate``).

        Returns:
            list[DetDataSample]: One merged prediction per image.
        """
        if not isinstance(data, dict):
            raise TypeError('IMDDFlipTTAModel expects the dict that '
                            f'TestTimeAug batches, got {type(data).__name__}')
        num_views = len(data['inputs'])
        per_view = []
        for idx in range(num_views):
            view = {key: value[idx] for key, value in data.items()}
            view = self.module.data_preprocessor(view, False)
            samples = view['data_samples']
            cls_list, mask_list = self.module.predict_logits(
                view['inputs'], samples, rescale=True)
            for sample, cls_logits, mask_logits in zip(samples, cls_list,
                                                       mask_list):
                sample.set_field(cls_logits, 'tta_cls_logits',
                                 field_type='data')
                sample.set_field(unflip(mask_logits, sample.metainfo),
                                 'tta_mask_logits', field_type='data')
            per_view.append(samples)
        return self.merge_preds([list(views) for views in zip(*per_view)])

    def merge_preds(
            self,
            data_samples_list: List[List[DetDataSample]]
    ) -> List[DetDataSample]:
        """Merge the views of each image and post-process once.

        Args:
            data_samples_list (list[list[DetDataSample]]): Per image, its
                views carrying ``tta_cls_logits`` (Q, K+1) and
                ``tta_mask_logits`` (Q, H, W, flipped back).

        Returns:
            list[DetDataSample]: The un-flipped view of each image with the
            merged predictions.
        """
        merged = []
        for views in data_samples_list:
            base = next((v for v in views if not v.metainfo.get('flip')),
                        None)
            if base is None:
                raise ValueError(
                    'flip TTA needs an un-flipped view (RandomFlip prob=0) '
                    f'of {views[0].metainfo.get("img_path", "each image")}')
            cls_logits = [v.tta_cls_logits.float() for v in views]
            mask_logits = [v.tta_mask_logits.float() for v in views]
            shapes = {tuple(m.shape) for m in mask_logits}
            if len(shapes) != 1 or len({tuple(c.shape)
                                        for c in cls_logits}) != 1:
                raise ValueError(f'TTA views disagree in output shape: '
                                 f'{sorted(shapes)}')
            score_map = torch.stack([
                defect_score_map(c, m) for c, m in zip(cls_logits,
                                                       mask_logits)
            ]).mean(0)
            probs = torch.stack([c.softmax(-1) for c in cls_logits]).mean(0)
            mean_mask = torch.stack(mask_logits).mean(0)
            for view in views:
                del view.tta_cls_logits
                del view.tta_mask_logits
            self.module._postprocess_single(
                base, probs.clamp_min(1e-12).log(), mean_mask,
                score_map=score_map)
            self.module.apply_label_space([base])
            merged.append(base)
        return merged


def flip_tta_pipeline(test_pipeline: List[dict],
                      directions=('horizontal', 'vertical')) -> List[dict]:
    """A test pipeline turned into the flip-TTA pipeline: its last step
    (the packer) becomes a ``TestTimeAug`` over the un-flipped view and one
    flipped view per direction; the packer keeps its type and gets the
    ``flip`` and ``flip_direction`` meta keys.

    Args:
        test_pipeline (list[dict]): The test pipeline (packer last).
        directions (Sequence[str]): Flip directions of the extra views.

    Returns:
        list[dict]: The TTA pipeline.
    """
    steps = [dict(step) for step in test_pipeline]
    pack = dict(steps[-1])
    if 'Pack' not in str(pack.get('type', '')):
        raise ValueError(f'the last test pipeline step must pack the '
                         f'inputs, got {pack.get("type")!r}')
    keys = tuple(pack.get('meta_keys', ('img_id', 'img_path', 'ori_shape',
                                        'img_shape', 'scale_factor')))
    pack['meta_keys'] = keys + tuple(k for k in ('flip', 'flip_direction')
                                     if k not in keys)
    flips = [dict(type='RandomFlip', prob=0.)] + [
        dict(type='RandomFlip', prob=1., direction=d) for d in directions
    ]
    steps[-1] = dict(type='TestTimeAug', transforms=[flips, [pack]])
    return steps
