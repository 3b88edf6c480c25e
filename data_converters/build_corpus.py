# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Build the sharded IMDD pre-training corpus from converted datasets.

Examples::

    # merge, keeping MVTec AD / VisA test images (and any byte-identical
    # copy of them in other sources) out of the pre-training corpus
    python data_converters/build_corpus.py out/mvtec_ad out/visa out/btad \\
        --out-dir data/imdd_corpus --exclude mvtec_ad:test visa:test \\
        --shard-size 10000 --nproc 8

    # plus few-shot subsets for the data-efficiency study (paper Fig. 11)
    python data_converters/build_corpus.py out/* --out-dir data/imdd_corpus \\
        --few-shot 25 50 100 200 350 --seed 0

    # few-shot subset of one converted COCO split (Stage-2 fine-tuning)
    python data_converters/build_corpus.py --few-shot-coco \\
        out/mvtec_ad/annotations/train.json --few-shot 50 \\
        --out-dir out/mvtec_ad/annotations

Few-shot corpora go to ``OUT/fewshot/n<N>_seed<S>/`` (same format as the
corpus); few-shot COCO files to ``OUT/<stem>_n<N>_seed<S>.json``. See
``data_converters/corpus.py`` for the format and guarantees.
"""
import argparse
import os.path as osp
import sys

if __package__ in (None, ''):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from data_converters.corpus import (CorpusInput, build_corpus,  # noqa: E402
                                    few_shot_coco, few_shot_corpus)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Merge converted datasets into a sharded, de-duplicated '
        'IMDD corpus with evaluation-set exclusion and few-shot subsets.')
    parser.add_argument(
        'inputs',
        nargs='*',
        help='converter output folders, "DIR" or "NAME=DIR", in priority '
        'order (the first copy of a duplicate image is kept)')
    parser.add_argument('--out-dir', required=True, help='corpus folder')
    parser.add_argument(
        '--exclude',
        nargs='*',
        default=[],
        metavar='DATASET:SPLIT',
        help='splits never to include, e.g. mvtec_ad:test visa:test '
        '(split "*" = whole dataset)')
    parser.add_argument(
        '--exclude-file',
        nargs='*',
        default=[],
        help='files listing SHA-256 hashes, image paths (absolute, or '
        'relative to the dataset root) or DATASET:SPLIT specs, one a line')
    parser.add_argument(
        '--no-exclude-by-content',
        action='store_true',
        help='do not also drop byte-identical copies of excluded images')
    parser.add_argument('--shard-size', type=int, default=10000)
    parser.add_argument(
        '--image-root',
        nargs='*',
        default=[],
        metavar='NAME=DIR',
        help='dataset root of an input (the --root it was converted from; '
        'converter outputs do not record it)')
    parser.add_argument(
        '--no-instances',
        action='store_true',
        help='leave boxes/masks out of the records (captions only)')
    parser.add_argument('--nproc', type=int, default=1)
    parser.add_argument('--on-error', choices=['raise', 'skip'],
                        default='raise')
    parser.add_argument(
        '--few-shot',
        type=int,
        nargs='*',
        default=[],
        metavar='N',
        help='also write N-images-per-class subsets')
    parser.add_argument('--seed', type=int, default=0,
                        help='few-shot seed')
    parser.add_argument('--few-shot-normal', action='store_true',
                        help='also sample N normal images')
    parser.add_argument(
        '--few-shot-coco',
        metavar='ANN_FILE',
        help='sample one COCO file instead of building a corpus')
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args(argv)
    if not args.few_shot_coco and not args.inputs:
        parser.error('give converted dataset folders (or --few-shot-coco)')
    if args.few_shot_coco and not args.few_shot:
        parser.error('--few-shot-coco needs --few-shot N')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.few_shot_coco:
        stem = osp.splitext(osp.basename(args.few_shot_coco))[0]
        for n in args.few_shot:
            out = osp.join(args.out_dir, f'{stem}_n{n}_seed{args.seed}.json')
            res = few_shot_coco(args.few_shot_coco, out, n, args.seed,
                                args.few_shot_normal)
            print(f'{out}: {res["num_images"]} images, per class '
                  f'{res["per_class"]}')
        return 0

    roots = {}
    for item in args.image_root:
        if '=' not in item:
            raise SystemExit(f'--image-root expects NAME=DIR, got {item!r}')
        name, path = item.split('=', 1)
        roots[name] = path
    inputs = [CorpusInput.parse(spec, roots) for spec in args.inputs]
    index = build_corpus(
        inputs,
        args.out_dir,
        exclude=args.exclude,
        exclude_files=args.exclude_file,
        exclude_by_content=not args.no_exclude_by_content,
        shard_size=args.shard_size,
        with_instances=not args.no_instances,
        nproc=args.nproc,
        on_error=args.on_error,
        progress=not args.no_progress)
    print(f'{args.out_dir}: {index["num_images"]} images '
          f'({index["num_normal"]} normal), {index["num_instances"]} '
          f'instances in {len(index["shards"])} shards; '
          f'{index["num_duplicates"]} duplicates and '
          f'{index["exclusions"]["num_excluded"]} excluded images dropped'
          + (f', {index["num_errors"]} unreadable skipped'
             if index['num_errors'] else ''))
    for n in args.few_shot:
        sub_dir = osp.join(args.out_dir, 'fewshot', f'n{n}_seed{args.seed}')
        sub = few_shot_corpus(
            osp.join(args.out_dir, 'index.json'), sub_dir, n, args.seed,
            args.few_shot_normal)
        print(f'{sub_dir}: {sub["num_images"]} images')
    return 0


if __name__ == '__main__':
    sys.exit(main())
