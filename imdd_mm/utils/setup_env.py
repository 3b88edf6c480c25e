# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Registration entry point and runtime environment helpers."""
import os

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register mmdet's, mmseg's and imdd_mm's modules.

    ``import imdd_mm`` already registers imdd-mm's components into mmdet's
    (and, where they serve MMSegmentation, mmseg's) registries; this also
    registers mmdet's own modules and, like mmdet's function of the same
    name, sets the default scope to ``mmdet``.

    Args:
        init_default_scope (bool): Whether to set the default scope to
            ``mmdet``. Defaults to True.
    """
    from mmdet.utils import register_all_modules as mmdet_register

    import imdd_mm  # noqa: F401  (registers our modules)
    mmdet_register(init_default_scope=False)
    if init_default_scope:
        never_created = (DefaultScope.get_current_instance() is None
                         or not DefaultScope.check_instance_created('mmdet'))
        if never_created:
            DefaultScope.get_instance('mmdet', scope_name='mmdet')
            return
        current_scope = DefaultScope.get_current_instance()
        if current_scope.scope_name != 'mmdet':
            import datetime
            new_instance_name = f'mmdet-{datetime.datetime.now()}'
            DefaultScope.get_instance(new_instance_name, scope_name='mmdet')


def setup_cpu_distributed(cfg) -> None:
    """Make a ``pytorch``-launched run work on machines without CUDA.

    mmengine 0.10's ``init_dist`` always calls ``torch.cuda.set_device`` and
    its default model wrapper passes ``device_ids=[LOCAL_RANK]``; both fail on
    a CPU-only machine. When CUDA is absent and the run was started by
    ``torchrun`` (``tools/dist_train.sh``), the process group is initialised
    here with the ``gloo`` backend (mmengine then skips its own
    ``init_dist``) and the DDP wrapper is told to use no device ids. With CUDA
    present nothing changes and NCCL is used as usual.

    Args:
        cfg (mmengine.Config): The run's config, updated in place.
    """
    import torch
    import torch.distributed as dist
    if torch.cuda.is_available() or cfg.get('launcher', 'none') == 'none':
        return
    if 'RANK' not in os.environ or dist.is_initialized():
        return
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = \
        'gloo'
    dist.init_process_group(
        backend='gloo',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']))
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
