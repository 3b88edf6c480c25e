# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import collections
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import load_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from imdd_mm.utils import UnsafeCheckpointError, safe_torch_load


class Evil:

    def __reduce__(self):
        return (os.system, ('echo pwned',))


def _mmengine_like_checkpoint():
    hub = MessageHub.get_instance('imdd_ckpt_test')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', np.float32(1.0))
    hub.update_info('iter', 10)
    return dict(
        meta=dict(epoch=1, iter=10, seed=np.int64(7),
                  rng=np.random.RandomState(0).get_state()[1][:4]),
        state_dict={'linear.weight': torch.ones(2, 2)},
        message_hub=hub.state_dict(),
        optimizer=dict(state={0: dict(step=torch.tensor(3.))}),
    )


def test_default_torch_load_rejects_mmengine_checkpoint(tmp_path):
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    # The problem this module exists for: torch>=2.6 defaults to
    # weights_only=True, which refuses mmengine's HistoryBuffer.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)


def test_safe_load_reads_what_mmengine_writes(tmp_path):
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    ckpt = safe_torch_load(path)
    buffers = ckpt['message_hub']['log_scalars']
    assert isinstance(buffers['train/loss'], HistoryBuffer)
    assert buffers['train/loss'].mean() == pytest.approx(1.25)
    assert ckpt['meta']['seed'] == 7
    torch.testing.assert_close(ckpt['state_dict']['linear.weight'],
                               torch.ones(2, 2))


def test_mmengine_loader_routes_through_safe_loader(tmp_path):
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    ckpt = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert ckpt['meta']['iter'] == 10
    model = torch.nn.Module()
    model.linear = torch.nn.Linear(2, 2, bias=False)
    load_checkpoint(model, str(path), map_location='cpu')
    torch.testing.assert_close(model.linear.weight.data, torch.ones(2, 2))


@pytest.mark.parametrize('payload', [
    Evil(), {'state_dict': {}, 'x': Evil()},
    {'fn': getattr(np, 'load')}
])
def test_other_pickled_objects_fail_with_clear_message(tmp_path, payload):
    path = tmp_path / 'evil.pth'
    torch.save(payload, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        safe_torch_load(path)
    msg = str(err.value)
    assert str(path) in msg and 'allow-list' in msg
    with pytest.raises(UnsafeCheckpointError):
        CheckpointLoader.load_checkpoint(str(path))


@pytest.mark.parametrize('target', [
    (HistoryBuffer, '__init__'),  # private attribute of the allowed class
    (collections.OrderedDict, 'fromkeys'),  # allowed class, not HistoryBuffer
])
def test_getattr_limited_to_history_buffer(tmp_path, target):

    class Sneaky:

        def __reduce__(self):
            return (getattr, target)

    path = tmp_path / 'sneaky.pth'
    torch.save({'x': Sneaky()}, path)
    with pytest.raises(UnsafeCheckpointError, match='getattr'):
        safe_torch_load(path)


def test_empty_history_buffer_checkpoint_loads(tmp_path):
    """An empty HistoryBuffer pickles b'' as ``builtins.bytes`` (pickle
    protocol 2, torch.save's default): the safe loader must read it."""
    hub = MessageHub.get_instance('imdd_empty_buffer')
    hub.update_info('blob', bytearray(b'\x00\x01'))
    path = tmp_path / 'empty_buffer.pth'
    torch.save(dict(meta=dict(), state_dict={},
                    message_hub=dict(log_scalars={'x': HistoryBuffer()},
                                     runtime_info=dict(hub.runtime_info))),
               path)
    ckpt = safe_torch_load(str(path))
    buf = ckpt['message_hub']['log_scalars']['x']
    assert isinstance(buf, HistoryBuffer) and len(buf.data[0]) == 0
    assert ckpt['message_hub']['runtime_info']['blob'] == b'\x00\x01'
