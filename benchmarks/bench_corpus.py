# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Corpus-builder scaling benchmark: peak memory and throughput.

Builds synthetic converter outputs of N images each (tiny distinct image
files, one box instance per image, images listed before annotations so the
builder's staging path is exercised), then, for every N, runs in a fresh
subprocess (so peak RSS is per run):

* ``build``: ``build_corpus`` (hash + exclude + de-duplicate + shard);
* ``hash``: a plain loop hashing the same files (the I/O floor),

and reports peak RSS (MiB), images/s and the ratio build/hash throughput.
Peak RSS should stay flat as N grows (bounded memory).

Usage::

    python benchmarks/bench_corpus.py --sizes 10000 100000 --workdir /tmp/cb
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def make_source(root: str, n: int) -> str:
    out = osp.join(root, f'src_{n}')
    img_dir = osp.join(out, 'img')
    if osp.isfile(osp.join(out, 'categories.json')):
        return out
    os.makedirs(osp.join(out, 'annotations'), exist_ok=True)
    os.makedirs(img_dir, exist_ok=True)
    cats = [dict(id=k + 1, name=f'defect{k}', imdd_id=1000 + k)
            for k in range(10)]
    with open(osp.join(out, 'annotations', 'train.json'), 'w') as f:
        f.write('{"images": [')
        for i in range(n):
            fn = f'img/{i:08d}.png'
            with open(osp.join(out, fn), 'wb') as g:
                g.write(b'synthetic %d ' % i + b'x' * 200)
            f.write((',' if i else '') + json.dumps(dict(
                id=i + 1, file_name=fn, width=64, height=64, source='bench',
                split='train', is_normal=False, image_label=i % 10 + 1,
                caption='steel plate with a thin vertical scratch at the '
                'upper-left corner, potentially caused by handling',
                caption_nouns=['steel plate', 'scratch'])))
        f.write('], "annotations": [')
        for i in range(n):
            f.write((',' if i else '') + json.dumps(dict(
                id=i + 1, image_id=i + 1, category_id=i % 10 + 1,
                bbox=[1, 2, 10, 12], area=120.0, iscrowd=0,
                segmentation=[[1, 2, 11, 2, 11, 14, 1, 14]])))
        f.write('], "categories": ' + json.dumps(cats) + '}\n')
    with open(osp.join(out, 'captions.jsonl'), 'w') as f:
        f.write(json.dumps(dict(file_name='img/00000000.png',
                                image_root=out)) + '\n')
    with open(osp.join(out, 'categories.json'), 'w') as f:
        json.dump(cats, f)
    return out


CHILD = r'''
import json, os, resource, sys, time
sys.path.insert(0, {repo!r})
mode, src, out, nproc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
t = time.perf_counter()
if mode == 'build':
    from data_converters.corpus import build_corpus
    n = build_corpus([src], out, shard_size=10000, nproc=nproc)['num_images']
else:
    from multiprocessing import Pool
    from data_converters.corpus import hash_file
    files = (os.path.join(src, 'img', f) for f in
             sorted(os.listdir(os.path.join(src, 'img'))))
    if nproc > 1:
        with Pool(nproc) as pool:
            n = sum(1 for _ in pool.imap(hash_file, files, chunksize=64))
    else:
        n = sum(1 for f in files if hash_file(f))
dt = time.perf_counter() - t
print(json.dumps(dict(n=n, seconds=dt,
                      peak_rss_mib=resource.getrusage(
                          resource.RUSAGE_SELF).ru_maxrss / 1024)))
'''


def run(mode: str, src: str, out: str, nproc: int) -> dict:
    res = subprocess.run(
        [sys.executable, '-c', CHILD.format(repo=REPO), mode, src, out,
         str(nproc)], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sizes', type=int, nargs='+', default=[5000, 50000])
    p.add_argument('--workdir', default='/tmp/imdd_corpus_bench')
    p.add_argument('--nproc', type=int, default=1)
    args = p.parse_args(argv)
    rows = []
    for n in args.sizes:
        src = make_source(args.workdir, n)
        hashed = run('hash', src, '', args.nproc)
        built = run('build', src, osp.join(args.workdir, f'corpus_{n}'),
                    args.nproc)
        rows.append(dict(
            images=n, nproc=args.nproc,
            build_img_per_s=round(n / built['seconds'], 1),
            hash_img_per_s=round(n / hashed['seconds'], 1),
            ratio_build_to_hash=round(hashed['seconds'] / built['seconds'],
                                      3),
            build_peak_rss_mib=round(built['peak_rss_mib'], 1),
            hash_peak_rss_mib=round(hashed['peak_rss_mib'], 1)))
        print(json.dumps(rows[-1]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
