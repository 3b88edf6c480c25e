# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The main job end to end (``make demo``), on CPU, with nothing downloaded.

Steps (each one a tool a user runs by hand too; the commands are printed):

1. data: procedurally generated industrial surfaces (brushed metal, woven
   fabric, concrete, PCB traces) with scratches, cracks, stains and holes,
   written in the folder-per-class layout; or ``--data DIR``, a real
   dataset folder: ``DIR/dataset.yaml`` (a generic-converter config) when
   present, else the source detected from its published layout (Magnetic
   Tile, NEU-DET, KolektorSDD, MVTec AD, ...; ``--source NAME`` to choose);
2. conversion to COCO + structured captions with ``data_converters``;
3. the open-vocabulary split: ``--novel`` classes (default: the last defect
   class; none for a single-class dataset or with ``--novel none``) are
   removed from training and named only at test time;
4. tiny Stage-1 diffusion pretraining on the training images' captions;
5. tiny Stage-2 training of the open-vocabulary Mask2Former on the base
   classes, its backbone loaded from the Stage-1 checkpoint;
6. evaluation on the test split with the full vocabulary (base + novel):
   classification, mask-derived boxes, segmentation and anomaly metrics;
7. the benchmark table (Markdown + CSV) and the HTML report.

The configs it writes to ``OUT/configs`` are complete examples of "one new
config per dataset": they inherit the tiny configs and only set paths.

Example:
    python tools/demo.py                     # embedded default data
    python tools/demo.py --data ../shared/data/magnetic_tile
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args():
    parser = argparse.ArgumentParser(description='imdd-mm end-to-end demo')
    parser.add_argument(
        '--data', help='a real dataset folder (default: generated surfaces)')
    parser.add_argument(
        '--source', help='converter name for --data (default: DIR/dataset.'
        'yaml, else detected from the layout)')
    parser.add_argument('--out-dir', default='demo_out')
    parser.add_argument(
        '--novel', default=None,
        help='comma-separated classes held out of training and named only '
        'at test time, or "none" (default: the last defect class; none when '
        'the dataset has one class)')
    parser.add_argument('--stage1-iters', type=int, default=100)
    parser.add_argument('--stage2-iters', type=int, default=800)
    parser.add_argument(
        '--images-per-class', type=int, default=24,
        help='generated training images per class (val/test get a quarter '
        'and a third of it)')
    parser.add_argument(
        '--max-test-images', type=int, default=120,
        help='cap on evaluated test images (real datasets)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


class Steps:
    """Numbered progress lines with elapsed time."""

    def __init__(self, total: int) -> None:
        self.total, self.index, self.start = total, 0, time.time()

    def __call__(self, text: str) -> None:
        self.index += 1
        elapsed = time.time() - self.start
        print(f'\n[{self.index}/{self.total}] {text}   '
              f'(elapsed {elapsed / 60:.1f} min)', flush=True)


def run(cmd: List[str], log_file: Path,
        show=r'mmengine - INFO - (Iter|Epoch)\((train|test)\)|report written|'
        r'^(converted|wrote|\d+ image)|"num_|skipped') -> None:
    """Run a tool, keep its full output in ``log_file`` and show the
    progress lines; stop the demo with the log's tail when it fails."""
    printable = ' '.join(str(c) for c in cmd)
    print(f'  $ {printable}', flush=True)
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED='1')
    # tiny models: one thread per process is fastest and deterministic
    env.setdefault('OMP_NUM_THREADS', '1')
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(show)
    with open(log_file, 'w') as log:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=REPO, env=env,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            log.write(line)
            if pattern.search(line):
                text = line.split(' - INFO - ', 1)[-1].rstrip()
                print('    ' + text[:150], flush=True)
        code = proc.wait()
    if code != 0:
        tail = ''.join(open(log_file).readlines()[-40:])
        raise SystemExit(f'\nstep failed ({printable}), exit {code}; '
                         f'last lines of {log_file}:\n{tail}')


#: Sources with image-level labels only: the demo trains masks.
IMAGE_LABEL_ONLY = ('elpv', 'sdnet2018', 'tig_al5083')


def detect_source(data: Path) -> Tuple[str, Optional[Path]]:
    """SOURCE name and config for ``--data DIR`` without ``--source``:
    ``DIR/dataset.yaml`` when present (``folder``, or ``generic`` when it
    names a ``format``), else the one published layout that ``DIR``
    matches (``data_converters/detect_layout.py``)."""
    from data_converters.detect_layout import (config_source, dataset_config,
                                               detect_sources, layout_hints,
                                               layout_summary)
    config = dataset_config(data)
    if config is not None:
        try:
            return config_source(config), config
        except ValueError as e:
            raise SystemExit(str(e))
    found = detect_sources(data)
    if len(found) == 1:
        return found[0], None
    if found:
        raise SystemExit(
            f'{data}: the layout fits several converters: '
            f'{", ".join(found)}; pass --source NAME (one of them)')
    hints = layout_hints(data)
    if hints:
        raise SystemExit('\n'.join(hints))
    raise SystemExit(
        f'{data}: no known layout; pass --source NAME, or describe the tree '
        f'in {data / "dataset.yaml"} (e.g. data_converters/examples/'
        f'folder_with_masks.yaml). Known layouts:\n{layout_summary()}')


def converter_args(data: Path, source: Optional[str]) -> Tuple[str, List]:
    """``data_converters/convert.py`` arguments for ``--data DIR``
    (``DIR/dataset.yaml`` is passed as ``--config`` when present)."""
    from data_converters.detect_layout import dataset_config
    config = dataset_config(data)
    if source is None:
        source, config = detect_source(data)
    if source in IMAGE_LABEL_ONLY:
        raise SystemExit(f'{source} has image-level labels only; the demo '
                         'trains masks: use Magnetic Tile, NEU-DET (boxes as '
                         'masks), KolektorSDD or a folder with masks')
    args = [source, '--root', data]
    if config is not None:
        args += ['--config', config]
    return source, args


def split_vocabulary(converted: Path, novel_arg: Optional[str],
                     max_test: int, seed: int) -> Dict:
    """Write ``train_base.json`` without the novel
    classes (their images are dropped, not relabelled normal) and a test
    file with every class; returns the vocabularies."""
    from data_converters.open_vocab_split import make_open_vocab_split
    return make_open_vocab_split(converted / 'annotations', novel_arg,
                                 max_test_images=max_test, seed=seed)


def write_configs(out: Path, converted: Path, image_root: Path, split: Dict,
                  args) -> Dict[str, Path]:
    cfg_dir = out / 'configs'
    cfg_dir.mkdir(parents=True, exist_ok=True)
    ann = converted / 'annotations'
    stage1 = cfg_dir / 'demo_stage1.py'
    stage1.write_text(f'''# Tiny Stage-1 pretraining on the demo's training captions.
_base_ = ['{REPO / "configs/imdd/tiny/stage1_tiny.py"}']
# tiny models: random frozen VAE and CLIP image tower, openly
model = dict(allow_random_frozen=True)
max_iters = {args.stage1_iters}
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
train_dataloader = dict(dataset=dict(
    ann_file='{converted / "captions.jsonl"}',
    img_root_override='{image_root}',
    split=['train']))
default_hooks = dict(checkpoint=dict(interval=max_iters))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=max_iters // 4),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=0,
         end=max_iters, T_max=max_iters)
]
''')
    stage2 = cfg_dir / 'demo_stage2.py'
    stage2.write_text(f'''# Tiny Stage-2 open-vocabulary training: base classes only in training,
# every class (base + novel) named at test time.
_base_ = ['{REPO / "configs/imdd/tiny/stage2_tiny.py"}']
base_classes = {tuple(split["base"])!r}
all_classes = {tuple(split["all"])!r}
# thin defects: the VAE encoder's stride-4 map joins the U-Net's
# stride-8/16/32 maps (mask features at stride 4)
feature_keys = ('vae_s4', 's8', 's16', 's32')
model = dict(
    # tiny models: random frozen VAE and CLIP image tower, openly (the
    # report and the tables say so)
    allow_random_frozen=True,
    # a tiny model spreads its class probabilities over K + 1 (void) classes:
    # report instances, pixels and image labels from 0.3 instead of 0.5
    test_cfg=dict(image_score_thr=0.3, sem_seg_thr=0.3),
    stage1_checkpoint='{out / "stage1" / f"iter_{args.stage1_iters}.pth"}',
    test_vocabulary=all_classes,
    feature_keys=feature_keys,
    backbone=dict(out_features=feature_keys),
    panoptic_head=dict(strides=[4, 8, 16, 32]),
    # the frozen path runs once per training image; later epochs read it
    feature_cache=dict(cache_dir='{out / "feature_cache"}',
                       max_bytes=2 * 2**30))
train_dataloader = dict(dataset=dict(
    data_root='', ann_file='{ann / "train_base.json"}',
    data_prefix=dict(img='{image_root}/'), metainfo=dict(classes=base_classes)))
val_dataloader = dict(dataset=dict(
    data_root='', ann_file='{ann / "test_all.json"}',
    data_prefix=dict(img='{image_root}/'), metainfo=dict(classes=all_classes)))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='IMDDClassificationMetric'),
    dict(type='MaskBoxDetectionMetric', box_mode='mask'),
    dict(type='DefectSegMetric'),
    dict(type='AnomalyMetric'),
]
test_evaluator = val_evaluator
train_cfg = dict(type='IterBasedTrainLoop', max_iters={args.stage2_iters},
                 val_begin=10**9)  # evaluated once, by tools/test.py
default_hooks = dict(checkpoint=dict(interval={args.stage2_iters}))
''')
    return dict(stage1=stage1, stage2=stage2)


def print_targets(test_dir: Path, split: Dict) -> None:
    """The demo's goals (issue 14) next to this run's measured values."""
    runs = sorted(test_dir.glob('*/result.json'))  # tools/test.py's record
    if not runs:
        return
    m = json.loads(runs[-1].read_text())['metrics']
    base = [m.get(f'cls/accuracy_{c}') for c in split['base']]
    base = [v for v in base if v is not None]
    rows = [('P-AUROC', m.get('anomaly/P-AUROC'), 0.97),
            ('pixel IoU', m.get('seg/iou'), 0.50),
            ('base-class accuracy (mean over ' + ', '.join(split['base']) +
             ')', sum(base) / len(base) if base else None, 0.80)]
    for name in split['novel']:
        rows.append((f'novel `{name}` images named `{name}`',
                     m.get(f'cls/accuracy_{name}'), 0.50))
    print('\n| Goal | Measured | Target | Met |\n|---|---|---|---|')
    for name, value, target in rows:
        if value is None:
            print(f'| {name} | – | {target:.0%} | – |')
        else:
            print(f'| {name} | {value:.1%} | {target:.0%} | '
                  f'{"yes" if value >= target else "no"} |')


def score_prior_maps(stage2_cfg: Path, out: Path) -> List[Dict]:
    """Score the centre-prior and constant maps on the demo's test split
    with the Stage-2 config's metrics; one benchmark-table entry each."""
    from mmengine.config import Config

    import imdd_mm  # noqa: F401
    from imdd_mm.evaluation.prior_maps import PRIOR_NAMES, evaluate_prior_maps
    cfg = Config.fromfile(str(stage2_cfg))
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for kind, metrics in evaluate_prior_maps(cfg).items():
        path = out / f'{kind}.json'
        tmp = path.with_suffix('.json.tmp')
        tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True))
        os.replace(tmp, path)
        entries.append(dict(name=PRIOR_NAMES[kind], results=str(path)))
        print(f'  {PRIOR_NAMES[kind]}: ' + ', '.join(
            f'{k}={v:.4f}' for k, v in sorted(metrics.items())
            if isinstance(v, float)))
    return entries


def main() -> None:
    args = parse_args()
    out = Path(args.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    step = Steps(7)

    step('data')
    if args.data:
        image_root = Path(args.data).resolve()
        source, convert_args = converter_args(image_root, args.source)
        print(f'  real dataset {image_root} (converter: {source})')
    else:
        from imdd_mm.datasets.synthetic_surfaces import write_surface_dataset
        image_root = out / 'surfaces'
        n = args.images_per_class
        cfg = write_surface_dataset(
            image_root,
            num_per_class=dict(train=n, val=max(2, n // 4),
                               test=max(3, n // 3)),
            size=128,
            seed=args.seed)
        convert_args = ['folder', '--root', image_root, '--config', cfg]
        if args.novel is None:
            args.novel = 'hole'  # a dark round pit, unlike the base classes
        print(f'  generated surfaces in {image_root}')

    step('convert to COCO + structured captions')
    converted = out / 'converted'
    run([py, 'data_converters/convert.py', *convert_args, '--out-dir',
         converted, '--nproc', '2', '--seed', str(args.seed)],
        out / 'logs' / 'convert.log')
    split = split_vocabulary(converted, args.novel, args.max_test_images,
                             args.seed)
    print(f'  base (trained) classes: {", ".join(split["base"])}')
    print(f'  novel classes, named only at test time: '
          f'{", ".join(split["novel"]) or "none (closed vocabulary)"}')
    configs = write_configs(out, converted, image_root, split, args)

    step('Stage 1: tiny diffusion pretraining on image-caption pairs')
    run([py, 'tools/train.py', configs['stage1'], '--work-dir',
         out / 'stage1'], out / 'logs' / 'stage1.log')

    step('Stage 2: tiny open-vocabulary Mask2Former on the base classes')
    run([py, 'tools/train.py', configs['stage2'], '--work-dir',
         out / 'stage2'], out / 'logs' / 'stage2.log')

    step('evaluation with the full vocabulary + HTML report')
    ckpt = out / 'stage2' / f'iter_{args.stage2_iters}.pth'
    report = out / 'report.html'
    test_cmd = [py, 'tools/test.py', configs['stage2'], ckpt, '--work-dir',
                out / 'test', '--report', report]
    run(test_cmd, out / 'logs' / 'test.log')

    step('benchmark table (with model-free reference maps)')
    priors = score_prior_maps(configs['stage2'], out / 'priors')
    spec = out / 'benchmark_spec.json'
    spec.write_text(json.dumps(dict(
        work_dir=str(out / 'benchmark'),
        tables=[
            dict(kind='classification', name='classification',
                 title='Open-vocabulary classification (base + novel)',
                 entries=[dict(name=split['dataset'],
                               defect_types=len(split['all']),
                               config=str(configs['stage2']),
                               checkpoint=str(ckpt),
                               results=str(out / 'test'))]),
            dict(kind='segmentation', name='segmentation',
                 title='Pixel-level segmentation',
                 entries=[dict(name=split['dataset'],
                               config=str(configs['stage2']),
                               checkpoint=str(ckpt),
                               results=str(out / 'test'))]),
            dict(kind='ablation', name='vs_model_free_maps',
                 title='The model beside model-free score maps (same test '
                 'split, same metrics)',
                 metrics=[['P-AUROC (%)', 'anomaly/P-AUROC'],
                          ['AUPRO (%)', 'anomaly/AUPRO'],
                          ['Pixel F1 (%)', 'seg/f1'],
                          ['Pixel IoU (%)', 'seg/iou']],
                 entries=[dict(name='Ours (tiny demo)',
                               config=str(configs['stage2']),
                               checkpoint=str(ckpt),
                               results=str(out / 'test'))] + priors),
            dict(kind='anomaly', name='anomaly',
                 title='Anomaly localisation',
                 entries=[dict(name='Ours (tiny demo)',
                               config=str(configs['stage2']),
                               checkpoint=str(ckpt),
                               results=str(out / 'test'))] + priors),
        ]), indent=2))
    run([py, 'tools/analysis_tools/benchmark_table.py', spec, '--out-dir',
         out / 'tables'], out / 'logs' / 'tables.log')
    for md in sorted((out / 'tables').glob('*.md')):
        print(md.read_text())

    print_targets(out / 'test', split)

    step('done')
    print(f'  report:  {report}\n  tables:  {out / "tables"}\n'
          f'  configs: {out / "configs"} (copy one for your own dataset)\n'
          f'  try:     python tools/infer.py {image_root} '
          f'{configs["stage2"]} {ckpt} --vocab "{",".join(split["all"])}" '
          f'--out {out / "infer"}')
    print(f'  web:     python tools/web_demo.py {configs["stage2"]} {ckpt} '
          f'--vocab "{",".join(split["all"])}" --examples {image_root}\n'
          f'           then open http://127.0.0.1:7860 (loopback only)')


if __name__ == '__main__':
    main()
