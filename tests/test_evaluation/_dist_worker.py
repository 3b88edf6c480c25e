# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Worker of test_metrics_dist.py, started by ``torch.distributed.run``:
evaluates the metrics over a DefaultSampler split (gloo, CPU)."""
import json
import sys

import imdd_mm  # noqa: F401,I001
import torch.distributed as dist
from mmengine.dataset import DefaultSampler

from tests.test_evaluation.test_metrics import build_dataset, evaluate_all


def main(out_file: str, num: int) -> None:
    dist.init_process_group('gloo')
    data = build_dataset(num)
    sampler = DefaultSampler(list(range(num)), shuffle=False, round_up=True)
    indices = list(iter(sampler))
    result = evaluate_all([data[i] for i in indices], num, batch=2)
    if dist.get_rank() == 0:
        with open(out_file, 'w') as f:
            json.dump(dict(result=result, world=dist.get_world_size(),
                           local=len(indices)), f)
    dist.barrier()  # leave together: see tests/test_models/test_losses
    dist.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1], int(sys.argv[2]))
