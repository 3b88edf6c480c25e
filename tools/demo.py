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
4. Stage-1 diffusion pretraining on the training images' captions (or
   ``--stage1 CKPT``, a Stage-1 checkpoint of the recipe, for real data);
5. Stage-2 training of the open-vocabulary Mask2Former on the base
   classes, its backbone loaded from the Stage-1 checkpoint;
6. evaluation on the test split with the full vocabulary (base + novel):
   classification, mask-derived boxes, segmentation and anomaly metrics;
7. the benchmark tables (Markdown + CSV), also in the HTML report.

Generated surfaces (the default) use the *tiny* recipe
(``configs/imdd/tiny``) for a fixed number of iterations (about 2-3 min on
2 CPU cores). A real dataset (``--data``) uses the *small* recipe
(``configs/imdd/small``: Stage 2 = ``study_a.py`` = ``stage2_small.py``
trained for ``--budget`` seconds of process CPU time), and trains the plain
supervised U-Net baseline (``study_c.py``) on the same training images for
the same CPU time; both are tested on the same test split beside two
model-free maps (about 15 min on 2 idle CPU cores with ``--stage1``).

The configs it writes to ``OUT/configs`` are complete examples of "one new
config per dataset": they inherit the recipe's configs and only set paths.

Example:
    python tools/demo.py                     # embedded default data
    python tools/demo.py --data ../shared/data/magnetic_tile \
        --stage1 work_dirs/stage1_small/iter_600.pth
"""
import argparse
import json
import os
import re
import shutil
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
    parser.add_argument(
        '--stage1', default=None,
        help='real data: a Stage-1 checkpoint of the small recipe (e.g. '
        'work_dirs/stage1_small/iter_600.pth, configs/imdd/small/'
        'stage1_small.py) instead of the demo\'s own short Stage 1 on the '
        'training images')
    parser.add_argument(
        '--stage1-iters', type=int, default=None,
        help='iterations of the demo\'s own Stage 1 (default: 100 tiny on '
        'generated surfaces, 200 small on real data)')
    parser.add_argument(
        '--stage2-iters', type=int, default=800,
        help='generated surfaces: Stage-2 iterations (real data trains for '
        '--budget seconds)')
    parser.add_argument(
        '--budget', type=float, default=240,
        help='real data: process CPU seconds of training (TimeBudgetHook, '
        'clock=cpu) for our Stage 2 and, the same, for the plain U-Net')
    parser.add_argument(
        '--images-per-class', type=int, default=24,
        help='generated training images per class (val/test get a quarter '
        'and a third of it)')
    parser.add_argument(
        '--shots', type=int, default=None,
        help='real data: train on N images per base class plus N defect-'
        'free ones, drawn (seeded) from the training split as the small '
        'study does (default 50; 0 = every training image)')
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


def few_shot_training_file(ann: Path, shots: int, seed: int) -> Path:
    """``train_base_n<shots>_seed<seed>.json``: ``shots`` images per base
    class plus ``shots`` defect-free ones from ``train_base.json``
    (``data_converters.corpus.few_shot_coco``, the small study's policy);
    prints the per-class counts the file actually holds."""
    from data_converters.corpus import few_shot_coco
    out = ann / f'train_base_n{shots}_seed{seed}.json'
    res = few_shot_coco(str(ann / 'train_base.json'), str(out), shots, seed,
                        include_normal=True)
    if not res['num_images']:
        raise SystemExit(f'{ann / "train_base.json"}: no training image '
                         f'for --shots {shots}')
    names = {str(c['id']): c['name'] for c in json.loads(
        (ann / 'train_base.json').read_text())['categories']}
    counts = ', '.join(f'{names.get(k, k)} {v}'
                       for k, v in sorted(res['per_class'].items()))
    print(f'  training file {out.name}: {res["num_images"]} images ({counts})')
    return out


def data_section(ann: Path, image_root: Path,
                 train_file: str = 'train_base.json') -> str:
    """Config text: training on ``train_file`` (default ``train_base.json``;
    ``base_classes``), validation and test on ``test_all.json``
    (``all_classes``)."""
    return f'''train_dataloader = dict(dataset=dict(
    data_root='', ann_file='{ann / train_file}',
    data_prefix=dict(img='{image_root}/'), metainfo=dict(classes=base_classes)))
val_dataloader = dict(dataset=dict(
    data_root='', ann_file='{ann / "test_all.json"}',
    data_prefix=dict(img='{image_root}/'), metainfo=dict(classes=all_classes)))
test_dataloader = val_dataloader
'''


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
{data_section(ann, image_root)}val_evaluator = [
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


SMALL = REPO / 'configs' / 'imdd' / 'small'


def scaled_stage1_settings(max_iters: int) -> Dict:
    """The small Stage 1's schedule (``stage1_small.py``) shortened to
    ``max_iters``: warm-up and cosine ends scaled with the iterations, and
    the EMA momentum scaled inversely, so that the initial weights keep the
    same (negligible) share of the averaged model as in the full run."""
    from mmengine.config import Config
    base = Config.fromfile(str(SMALL / 'stage1_small.py'))
    ratio = max_iters / base.train_cfg.max_iters
    schedulers = []
    for sched in base.param_scheduler:
        sched = dict(sched)
        for key in ('begin', 'end', 'T_max'):
            if key in sched:
                sched[key] = max(1, round(sched[key] * ratio)) \
                    if sched[key] else 0
        schedulers.append(sched)
    hooks = []
    for hook in base.custom_hooks:
        hook = dict(hook)
        if hook.get('type') == 'EMAHook':
            hook['momentum'] = min(0.5, hook['momentum'] / ratio)
        hooks.append(hook)
    return dict(param_scheduler=schedulers, custom_hooks=hooks)


def write_small_configs(out: Path, converted: Path, image_root: Path,
                        split: Dict, args) -> Dict[str, Path]:
    """Real data: the small recipe's configs pointed at the converted
    dataset. Stage 2 inherits ``study_a.py`` (= ``stage2_small.py`` for a
    CPU-time budget), the U-Net ``study_c.py``; both get the same training
    file, test file and ``--budget``."""
    cfg_dir = out / 'configs'
    cfg_dir.mkdir(parents=True, exist_ok=True)
    ann = converted / 'annotations'
    paths = {}
    if args.stage1 is None:
        iters = args.stage1_iters
        stage1 = cfg_dir / 'demo_stage1_small.py'
        settings = scaled_stage1_settings(iters)
        stage1.write_text(f'''# The small recipe's Stage 1 (configs/imdd/small/stage1_small.py), shortened
# to {iters} iterations, on the demo's training images' captions.
_base_ = ['{SMALL / "stage1_small.py"}']
max_iters = {iters}
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
train_dataloader = dict(dataset=dict(
    _delete_=True,
    type='ImageCaptionDataset',
    ann_file='{converted / "captions.jsonl"}',
    img_root_override='{image_root}',
    split=['train'],
    pipeline={{{{_base_.train_pipeline}}}}))
default_hooks = dict(checkpoint=dict(interval=max_iters))
# stage1_small.py's schedule and EMA scaled to {iters} iterations
param_scheduler = {settings["param_scheduler"]!r}
custom_hooks = {settings["custom_hooks"]!r}
''')
        paths['stage1'] = stage1
        stage1_ckpt = out / 'stage1_small' / f'iter_{iters}.pth'
    else:
        stage1_ckpt = Path(args.stage1).resolve()
        if not stage1_ckpt.is_file():
            raise SystemExit(f'--stage1 {args.stage1}: no such checkpoint')
    paths['stage1_checkpoint'] = stage1_ckpt
    train_file = 'train_base.json'
    if args.shots:
        train_file = few_shot_training_file(ann, args.shots, args.seed).name
    data = f'''base_classes = {tuple(split["base"])!r}
all_classes = {tuple(split["all"])!r}
{data_section(ann, image_root, train_file)}# trained for {args.budget:g} s of this process's CPU time (the same for our
# Stage 2 and the U-Net); the model reached is <work_dir>/time_budget.pth
custom_hooks = [
    dict(type='VocabularyHook'),
    dict(type='TimeBudgetHook', seconds={args.budget!r}, clock='cpu'),
]
'''
    stage2 = cfg_dir / 'demo_stage2_small.py'
    stage2.write_text(f'''# The small recipe's Stage 2 (configs/imdd/small/stage2_small.py via
# study_a.py: CPU-time budget) on the base classes; every class (base +
# novel) named at test time.
_base_ = ['{SMALL / "study_a.py"}']
{data}model = dict(
    stage1_checkpoint='{stage1_ckpt}',
    test_vocabulary=all_classes,
    feature_cache=dict(cache_dir='{out / "feature_cache_small"}'))
''')
    unet = cfg_dir / 'demo_unet_small.py'
    unet.write_text(f'''# The plain supervised U-Net baseline (configs/baselines/unet/
# supervised_unet_small_magnetic_tile.py via configs/imdd/small/study_c.py):
# closed set over the base classes, trained from scratch on the same images
# for the same CPU time as demo_stage2_small.py; its labels are mapped to the
# test split's classes by name (a novel class is never predicted).
_base_ = ['{SMALL / "study_c.py"}']
{data}model = dict(num_classes=len(base_classes), class_names=base_classes)
''')
    paths.update(stage2=stage2, unet=unet)
    return paths


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


#: The table of the model beside its baselines (file stem) and its columns.
COMPARISON_TABLE = 'vs_baselines'
COMPARISON_METRICS = [['P-AUROC (%)', 'anomaly/P-AUROC'],
                      ['AUPRO (%)', 'anomaly/AUPRO'],
                      ['Pixel F1 (%)', 'seg/f1'],
                      ['Pixel IoU (%)', 'seg/iou'],
                      ['Image AUROC (%)', 'anomaly/I-AUROC'],
                      ['Defect-class acc. (%)',
                       'cls/defect_class_accuracy']]


def ours_label(args, real: bool) -> str:
    """Table row name of our model, saying which Stage 1 it stands on."""
    if not real:
        return 'Ours (tiny demo)'
    if args.stage1 is not None:
        return f'Ours (small recipe; Stage 1: {args.stage1})'
    return (f'Ours (small recipe; the demo\'s own {args.stage1_iters}-'
            'iteration Stage 1 on the training images)')


def unet_label(budget_json: Path) -> str:
    """Table row name of the U-Net baseline with the iterations it reached
    in its budget (``TimeBudgetHook``'s record)."""
    info = json.loads(budget_json.read_text())
    return (f'Plain supervised U-Net (from scratch, {info["iters"]} '
            f'iterations in {info["budget_s"]:g} CPU-s)')


def add_tables_to_report(report: Path, tables: Path,
                         names: List[str]) -> None:
    """Put benchmark tables (``tables/<name>.csv``, with the Markdown's
    commands and provenance) into the HTML report."""
    import csv

    from imdd_mm.visualization.report import insert_report_section
    for name in reversed(names):
        with open(tables / f'{name}.csv', newline='') as f:
            header, *rows = list(csv.reader(f))
        md = (tables / f'{name}.md').read_text()
        title = md.splitlines()[0].lstrip('# ').strip()
        insert_report_section(str(report), title, header, rows,
                              details=md)


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
    real = bool(args.data)
    if args.stage1_iters is None:
        args.stage1_iters = 200 if real else 100
    if args.stage1 is not None and not real:
        raise SystemExit('--stage1 is for real data (--data DIR); the '
                         'generated-surface demo trains its own tiny Stage 1')
    if not args.budget > 0:
        raise SystemExit(f'--budget must be > 0 seconds, got {args.budget}')
    if args.shots is None:
        args.shots = 50 if real else 0
    if args.shots and not real:
        raise SystemExit('--shots is for real data (--data DIR); the '
                         'generated-surface demo trains on all its images')
    if args.shots < 0:
        raise SystemExit(f'--shots must be >= 0, got {args.shots}')
    if real:
        configs = write_small_configs(out, converted, image_root, split,
                                      args)
    else:
        configs = write_configs(out, converted, image_root, split, args)

    if 'stage1' in configs:
        kind = 'small' if real else 'tiny'
        step(f'Stage 1: {kind} diffusion pretraining on image-caption pairs')
        run([py, 'tools/train.py', configs['stage1'], '--work-dir',
             out / f'stage1_{kind}' if real else out / 'stage1'],
            out / 'logs' / 'stage1.log')
    else:
        step(f'Stage 1: the given checkpoint {configs["stage1_checkpoint"]}')

    if real:
        step(f'Stage 2 (small recipe) and the plain supervised U-Net, '
             f'{args.budget:g} CPU-s each, on the base classes')
        # a cold cache for every run: the budget pays for the frozen path
        shutil.rmtree(out / 'feature_cache_small', ignore_errors=True)
        ckpts = {}
        for key, name in (('stage2', 'stage2_small'), ('unet', 'unet')):
            work = out / name
            (work / 'time_budget.pth').unlink(missing_ok=True)
            run([py, 'tools/train.py', configs[key], '--work-dir', work],
                out / 'logs' / f'{name}.log')
            ckpts[key] = work / 'time_budget.pth'
            info = json.loads((work / 'time_budget.json').read_text())
            print(f'  {name}: {info["iters"]} iterations in '
                  f'{info["elapsed_s"]:.0f} CPU-s')
        ckpt = ckpts['stage2']
    else:
        step('Stage 2: tiny open-vocabulary Mask2Former on the base classes')
        run([py, 'tools/train.py', configs['stage2'], '--work-dir',
             out / 'stage2'], out / 'logs' / 'stage2.log')
        ckpt = out / 'stage2' / f'iter_{args.stage2_iters}.pth'

    step('evaluation with the full vocabulary + HTML report')
    report = out / 'report.html'
    test_cmd = [py, 'tools/test.py', configs['stage2'], ckpt, '--work-dir',
                out / 'test', '--report', report]
    run(test_cmd, out / 'logs' / 'test.log')
    if real:
        run([py, 'tools/test.py', configs['unet'], ckpts['unet'],
             '--work-dir', out / 'test_unet'], out / 'logs' / 'test_unet.log')

    step('benchmark tables (with model-free reference maps)')
    priors = score_prior_maps(configs['stage2'], out / 'priors')
    ours = dict(name=ours_label(args, real), config=str(configs['stage2']),
                checkpoint=str(ckpt), results=str(out / 'test'))
    baselines = []
    if real:
        baselines.append(dict(
            name=unet_label(out / 'unet' / 'time_budget.json'),
            config=str(configs['unet']), checkpoint=str(ckpts['unet']),
            results=str(out / 'test_unet')))
    spec = out / 'benchmark_spec.json'
    spec.write_text(json.dumps(dict(
        work_dir=str(out / 'benchmark'),
        tables=[
            dict(kind='ablation', name=COMPARISON_TABLE,
                 title='The model beside '
                 + ('the plain supervised U-Net (same training images, same '
                    'CPU time) and ' if real else '')
                 + 'model-free score maps (same test split, same metrics)',
                 metrics=COMPARISON_METRICS,
                 entries=[ours] + baselines + priors),
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
            dict(kind='anomaly', name='anomaly',
                 title='Anomaly localisation',
                 entries=[ours] + baselines + priors),
        ]), indent=2))
    tables = out / 'tables'
    run([py, 'tools/analysis_tools/benchmark_table.py', spec, '--out-dir',
         tables], out / 'logs' / 'tables.log')
    for md in sorted(tables.glob('*.md')):
        if md.name != 'tables.md':
            print(md.read_text())
    add_tables_to_report(report, tables, [COMPARISON_TABLE])

    if not real:  # issue 14's goals are those of the generated surfaces
        print_targets(out / 'test', split)

    step('done')
    print(f'  report:  {report}\n  tables:  {tables}\n'
          f'  configs: {out / "configs"} (copy one for your own dataset)\n'
          f'  try:     python tools/infer.py {image_root} '
          f'{configs["stage2"]} {ckpt} --vocab "{",".join(split["all"])}" '
          f'--out {out / "infer"}')
    print(f'  web:     python tools/web_demo.py {configs["stage2"]} {ckpt} '
          f'--vocab "{",".join(split["all"])}" --examples {image_root}\n'
          f'           then open http://127.0.0.1:7860 (loopback only)')


if __name__ == '__main__':
    main()
