# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""FeatureCache: round trip, fingerprints, bounded size, bad entries and two
processes writing and reading one cache at the same time."""
import multiprocessing as mp
import os

import pytest
import torch
import torch.nn as nn

from imdd_mm.models.backbones.feature_cache import (FeatureCache, flip_maps,
                                                    module_fingerprint,
                                                    tensor_key)


def maps_of(seed, size=8):
    g = torch.Generator().manual_seed(seed)
    return {'s8': torch.randn(4, size, size, generator=g),
            'vae_s4': torch.randn(2, 2 * size, 2 * size, generator=g)}


def test_round_trip_and_namespaces(tmp_path):
    cache = FeatureCache(tmp_path)
    ns = cache.namespace(dict(frozen_weights='a', timestep=50))
    assert ns == cache.namespace(dict(timestep=50, frozen_weights='a'))
    assert ns != cache.namespace(dict(frozen_weights='b', timestep=50))
    assert (tmp_path / ns / 'identity.json').is_file()
    key = tensor_key(torch.ones(3, 4, 4))
    assert cache.get(ns, key) is None
    m = maps_of(0)
    cache.put(ns, key, m)
    got = cache.get(ns, key)
    assert set(got) == set(m)
    for k in m:
        assert torch.equal(got[k], m[k])
    assert (cache.hits, cache.misses) == (1, 1)
    # no temporary files are left behind
    assert not [p for p in tmp_path.rglob('*.tmp')]


def test_keys_follow_values_shape_and_dtype():
    x = torch.zeros(3, 4, 4)
    y = x.clone()
    y[0, 0, 0] = 1e-7
    keys = {tensor_key(x), tensor_key(y), tensor_key(x.reshape(3, 2, 8)),
            tensor_key(x.double())}
    assert len(keys) == 4
    assert tensor_key(x) == tensor_key(x.clone())


def test_fingerprint_changes_with_any_weight():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    b = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    b.load_state_dict(a.state_dict())
    fa = module_fingerprint([('unet', a)])
    assert fa == module_fingerprint([('unet', b)])
    with torch.no_grad():
        b[0].weight[0, 0, 0, 0] += 1e-6
    assert module_fingerprint([('unet', b)]) != fa
    b.load_state_dict(a.state_dict())
    b[1].running_mean += 1  # buffers count too
    assert module_fingerprint([('unet', b)]) != fa
    assert module_fingerprint([('vae', a)]) != fa  # names count


def test_half_storage_and_bad_arguments(tmp_path):
    cache = FeatureCache(tmp_path, dtype='fp16')
    ns = cache.namespace({})
    m = maps_of(1)
    cache.put(ns, 'ab' * 32, m)
    got = cache.get(ns, 'ab' * 32)  # from the memory LRU
    assert cache.memory_hits == 1
    disk = FeatureCache(tmp_path, dtype='fp16', memory_bytes=0).get(
        ns, 'ab' * 32)
    for k in m:  # memory and disk hits: the same fp16-rounded maps
        assert got[k].dtype == disk[k].dtype == torch.float32
        assert torch.equal(got[k], m[k].half().float())
        assert torch.equal(disk[k], got[k])
    assert torch.allclose(got['s8'], m['s8'], atol=1e-2)
    with pytest.raises(ValueError, match='dtype'):
        FeatureCache(tmp_path, dtype='int8')
    with pytest.raises(ValueError, match='max_bytes'):
        FeatureCache(tmp_path, max_bytes=0)
    with pytest.raises(TypeError):
        FeatureCache(tmp_path, max_gb=1)  # a typo fails


def test_unreadable_entry_is_a_miss(tmp_path):
    cache = FeatureCache(tmp_path)
    ns = cache.namespace({})
    key = 'cd' * 32
    path = cache.path(ns, key)
    path.parent.mkdir(parents=True)
    path.write_bytes(b'not a torch file')
    assert cache.get(ns, key) is None
    cache.put(ns, key, maps_of(2))  # recomputed entries overwrite it
    assert cache.get(ns, key) is not None


def test_size_is_bounded_lru(tmp_path):
    one = FeatureCache(tmp_path, max_bytes=10**9)
    ns = one.namespace({})
    one.put(ns, '00' * 32, maps_of(0))
    entry = one.size_bytes()
    cache = FeatureCache(tmp_path, max_bytes=int(entry * 5.5))
    keys = [f'{i:02d}' * 32 for i in range(1, 12)]
    for i, k in enumerate(keys):
        cache.put(ns, k, maps_of(i))
        os.utime(cache.path(ns, k), (1000 + i, 1000 + i))
        cache.get(ns, keys[0])  # keep the first one in use (LRU)
    assert cache.size_bytes() <= cache.max_bytes
    assert cache.get(ns, keys[0]) is not None
    assert cache.get(ns, keys[1]) is None  # least recently used went
    assert cache.get(ns, keys[-1]) is not None


def test_flip_maps():
    m = {'a': torch.arange(6.).reshape(1, 2, 3)}
    assert torch.equal(flip_maps(m, 'horizontal')['a'],
                       m['a'].flip(-1))
    assert torch.equal(flip_maps(m, 'vertical')['a'], m['a'].flip(-2))
    assert torch.equal(flip_maps(m, 'diagonal')['a'], m['a'].flip((-2, -1)))
    with pytest.raises(ValueError, match='flip direction'):
        flip_maps(m, 'sideways')


def _worker(root, max_bytes, memory_bytes, start, barrier, queue):
    torch.set_num_threads(1)
    cache = FeatureCache(root, max_bytes=max_bytes,
                         memory_bytes=memory_bytes)
    ns = cache.namespace(dict(frozen_weights='w'))
    barrier.wait()
    bad = 0
    # both workers write the shared keys 0..19 and their own keys, reading
    # back everything as they go, while the other one evicts
    for i in list(range(20)) + list(range(start, start + 20)):
        key = f'{i:064d}'
        cache.put(ns, key, maps_of(i))
        for j in (i, i // 2):
            got = cache.get(ns, f'{j:064d}')
            if got is not None and not torch.equal(got['s8'],
                                                   maps_of(j)['s8']):
                bad += 1
    queue.put(bad)


# memory_bytes=0: every read goes to the files the other process writes
# and evicts; the default: memory hits on top (copies of evicted entries)
@pytest.mark.parametrize('memory_bytes', [0, 512 * 2**20])
def test_two_processes_share_one_cache(tmp_path, memory_bytes):
    probe = FeatureCache(tmp_path / 'probe')
    probe.put(probe.namespace({}), '0' * 64, maps_of(0))
    entry = probe.size_bytes()
    root = tmp_path / 'shared'
    max_bytes = int(entry * 12)
    ctx = mp.get_context('fork')
    barrier = ctx.Barrier(2)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker,
                         args=(root, max_bytes, memory_bytes, start,
                               barrier, queue))
             for start in (100, 200)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert [queue.get(timeout=5) for _ in procs] == [0, 0]
    cache = FeatureCache(root, max_bytes=max_bytes, memory_bytes=0)
    # bounded (each process may overshoot by < max_bytes / 10 before it
    # checks) and every surviving entry is whole and correct
    assert cache.size_bytes() <= max_bytes * 1.2
    assert not list(root.rglob('*.tmp'))
    ns = cache.namespace(dict(frozen_weights='w'))
    survivors = 0
    for i in list(range(20)) + list(range(100, 120)) + list(range(200, 220)):
        got = cache.get(ns, f'{i:064d}')
        if got is not None:
            survivors += 1
            assert torch.equal(got['vae_s4'], maps_of(i)['vae_s4'])
    assert survivors >= 5


def test_memory_lru_serves_hits_without_the_file(tmp_path, monkeypatch):
    m0, m1, m2 = maps_of(0), maps_of(1), maps_of(2)
    entry = sum(v.numel() * v.element_size() for v in m0.values())
    cache = FeatureCache(tmp_path, memory_bytes=int(entry * 2.5))
    ns = cache.namespace({})
    keys = [f'{i:02d}' * 32 for i in range(3)]
    for k, m in zip(keys, (m0, m1, m2)):
        cache.put(ns, k, m)
    # the bound holds two entries: the first one put left memory
    assert cache.path(ns, keys[0]) not in cache._memory
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, 'load',
                        lambda *a, **k: loads.append(1) or real_load(*a, **k))
    old = os.stat(cache.path(ns, keys[2])).st_mtime
    os.utime(cache.path(ns, keys[2]), (old - 100, old - 100))
    got = cache.get(ns, keys[2])
    assert not loads and cache.memory_hits == 1
    assert torch.equal(got['s8'], m2['s8'])
    # a memory hit still refreshes the file's mtime (disk LRU)
    assert os.stat(cache.path(ns, keys[2])).st_mtime > old - 50
    # the caller owns the returned tensors
    got['s8'].zero_()
    assert torch.equal(cache.get(ns, keys[2])['s8'], m2['s8'])
    # a disk read puts the entry back in memory (evicting the LRU one)
    assert torch.equal(cache.get(ns, keys[0])['vae_s4'], m0['vae_s4'])
    assert len(loads) == 1
    cache.get(ns, keys[0])
    assert len(loads) == 1
    # an entry evicted from disk by another process is still exact in memory
    os.remove(cache.path(ns, keys[0]))
    assert torch.equal(cache.get(ns, keys[0])['s8'], m0['s8'])
    # memory_bytes=0 reads every hit from disk
    off = FeatureCache(tmp_path, memory_bytes=0)
    off.get(ns, keys[2])
    off.get(ns, keys[2])
    assert off.memory_hits == 0 and len(loads) == 3
    with pytest.raises(ValueError, match='memory_bytes'):
        FeatureCache(tmp_path, memory_bytes=-1)
