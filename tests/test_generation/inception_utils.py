# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""A random but well-scaled Inception-v3 weights file for metric tests."""
import torch
import torch.nn as nn


def save_random_inception(path, seed: int = 0) -> None:
    """Random inception_v3 weights whose BatchNorm statistics are calibrated
    on random images, so features are O(1) (uncalibrated random weights
    give activations of ~1e7, where round-off dominates FID)."""
    from torchvision.models import inception_v3
    torch.manual_seed(seed)
    net = inception_v3(weights=None, aux_logits=True, init_weights=True)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration
    aux, net.AuxLogits = net.AuxLogits, None  # unused in eval mode
    net.train()
    with torch.no_grad():
        net(torch.rand(4, 3, 96, 96) * 2 - 1)
    net.AuxLogits = aux
    torch.save(net.state_dict(), path)
