# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Model and batch builders for tests and benchmarks (as ``mmdet.testing``).

Both the GPU tests (``tests/test_gpu/``) and the speed benchmarks
(``benchmarks/bench_inference.py``, ``benchmarks/bench_training.py``) build
the paper-size models from the shipped configs and feed them synthetic
batches; these helpers are that one code path.
"""
from ._builders import (DEFAULT_VOCAB, FULL_STAGE1_CFG, FULL_STAGE2_CFG,
                        TINY_STAGE1_CFG, TINY_STAGE2_CFG, build_from_config,
                        frozen_modules, stage1_batch, stage2_batch,
                        trainable_parameters)

__all__ = [
    'DEFAULT_VOCAB', 'FULL_STAGE1_CFG', 'FULL_STAGE2_CFG', 'TINY_STAGE1_CFG',
    'TINY_STAGE2_CFG', 'build_from_config', 'frozen_modules', 'stage1_batch',
    'stage2_batch', 'trainable_parameters'
]
