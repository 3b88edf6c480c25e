# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""benchmark_table.py on results fixtures and with a fake tools/test.py."""
import csv
import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
spec_ = importlib.util.spec_from_file_location(
    'benchmark_table', REPO / 'tools' / 'analysis_tools' /
    'benchmark_table.py')
bt = importlib.util.module_from_spec(spec_)
spec_.loader.exec_module(bt)

FAKE_TEST = textwrap.dedent('''
    """Stand-in for tools/test.py: writes a result file (metrics derived
    from the arguments, no model involved) with the real provenance
    record."""
    import argparse, importlib.util, json, os, sys, time, zlib
    spec = importlib.util.spec_from_file_location(
        'rr', os.environ['IMDD_RUN_RECORD'])
    rr = importlib.util.module_from_spec(spec); spec.loader.exec_module(rr)
    p = argparse.ArgumentParser()
    p.add_argument('config'); p.add_argument('checkpoint')
    p.add_argument('--work-dir'); p.add_argument('--cfg-options', nargs='+')
    a = p.parse_args()
    opts = dict(o.split('=', 1) for o in a.cfg_options or [])
    base = (zlib.crc32((a.config + a.checkpoint).encode()) % 1000) / 1e4
    t = int(opts.get('model.backbone.timestep', 50))
    acc = 0.9 + base - abs(t - 50) / 1000
    acc += zlib.crc32(opts.get('category', '').encode()) % 100 / 1e3
    text = open(a.config).read()
    metrics = {'seg/acc': acc, 'seg/iou': acc - 0.4, 'seg/f1': acc - 0.3,
               'cls/accuracy': acc, 'vocab_in_config': 'test_vocabulary' in
               text, 'vocab_opt': opts.get('test_vocabulary', '')}
    if opts.get('split') == 'val':  # a threshold "chosen" on val
        metrics['seg/best_iou_thr'] = 0.35 + base
    if 'model.test_cfg.sem_seg_thr' in opts:
        metrics['thr_used'] = float(opts['model.test_cfg.sem_seg_thr'])
    parsed = rr.parse_cfg_options(a.cfg_options or [])
    cfg = rr.load_run_config(a.config, parsed)
    record = rr.build_run_record(cfg, a.config, a.checkpoint, parsed)
    while True:  # a fresh timestamp dir per run, as mmengine's
        ts = time.strftime('%Y%m%d_%H%M%S')
        if not os.path.exists(os.path.join(a.work_dir, ts)):
            break
        time.sleep(0.2)
    rr.write_result(os.path.join(a.work_dir, ts, 'result.json'), metrics,
                    record)
    with open(os.path.join(a.work_dir, 'calls.txt'), 'a') as f:
        f.write(ts + '\\n')
''')
RUN_RECORD = str(REPO / 'imdd_mm' / 'utils' / 'run_record.py')


@pytest.fixture
def fake_test(tmp_path, monkeypatch):
    """The fake tools/test.py (given the run_record module's path)."""
    monkeypatch.setenv('IMDD_RUN_RECORD', RUN_RECORD)
    fake = tmp_path / 'fake_test.py'
    fake.write_text(FAKE_TEST)
    return fake


def write_results(path: Path, **metrics) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics))
    return str(path)


def read_csv(path: Path):
    with open(path) as f:
        return list(csv.reader(f))


def test_tables_from_results_fixtures(tmp_path):
    r = tmp_path / 'results'
    vocab = tmp_path / 'visa_categories.json'
    vocab.write_text(json.dumps([{'id': 2, 'name': 'broken edge'},
                                 {'id': 1, 'name': 'crack'}]))
    spec = dict(work_dir=str(tmp_path / 'wd'), tables=[
        dict(kind='classification', entries=[
            dict(name='MVTec AD', defect_types=90, config='cfg/a.py',
                 checkpoint='a.pth', results=write_results(
                     r / 'a.json', **{'cls/accuracy': 0.983})),
            dict(name='VisA', defect_types=137, results=write_results(
                r / 'b.json', **{'cls/accuracy': 0.977}))]),
        dict(kind='detection', entries=[
            dict(name='YOLOv8-m', results=write_results(
                r / 'y.json', **{'det/mAP_50': 0.783, 'det/mAP_75': 0.621,
                                 'det/avg_iou': 0.684})),
            dict(name='Ours', results=write_results(
                r / 'o.json', **{'det/mAP_50': 0.746,
                                 'det/mAP_75': float('nan')}))]),
        dict(kind='segmentation', entries=[
            dict(name='bottle', results=write_results(
                r / 's1.json', **{'seg/acc': 0.9225, 'seg/f1': 0.583,
                                  'seg/iou': 0.521, 'seg/dice': 0.583})),
            dict(name='cable', results=write_results(
                r / 's2.json', **{'seg/acc': 0.897, 'seg/f1': 0.568,
                                  'seg/iou': 0.514, 'seg/dice': 0.568}))]),
        dict(kind='anomaly', entries=[
            dict(name='SimpleNet',
                 results=write_results(r / 'sn.json', **{
                     'anomaly/P-AUROC': 0.981, 'anomaly/AUPRO': 0.905})),
            dict(name='Ours',
                 results=write_results(r / 'ours.json', **{
                     'anomaly/P-AUROC': 0.961, 'anomaly/AUPRO': 0.902}))]),
        dict(kind='cross_dataset', entries=[
            dict(name='m2v', train='MVTec AD', test='VisA',
                 config=str(tmp_path / 'visa.py'), checkpoint='m.pth',
                 test_vocabulary=str(vocab), results=write_results(
                     r / 'x.json', **{'seg/acc': 0.832, 'seg/iou': 0.413}))]),
        dict(kind='data_efficiency', samples=[25, 50, 100, 200, 350],
             target=0.95, entries=[
                 dict(name='Random Init', results={
                     n: write_results(r / f'ri{n}.json',
                                      **{'cls/accuracy': v})
                     for n, v in zip([25, 50, 100, 200, 350],
                                     [0.5, 0.6, 0.7, 0.8, 0.9])}),
                 dict(name='IMDD-1M', results={
                     n: write_results(r / f'im{n}.json',
                                      **{'cls/accuracy': v})
                     for n, v in zip([25, 50, 100, 200, 350],
                                     [0.80, 0.90, 0.94, 0.96, 0.965])})]),
    ])
    (tmp_path / 'visa.py').write_text('x = 1\n')
    spec_file = tmp_path / 'spec.yaml'
    spec_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / 'out'
    assert bt.main([str(spec_file), '--out-dir', str(out)]) == 0

    rows = read_csv(out / 'table3_classification.csv')
    assert rows == [['Dataset', '# Defect Types', 'Accuracy (%)'],
                    ['MVTec AD', '90', '98.3'], ['VisA', '137', '97.7'],
                    ['Average', '–', '98.0']]
    md = (out / 'table3_classification.md').read_text()
    assert '| **Average** | – | **98.0** |' in md
    # the exact command sits above the table
    assert md.index('```bash') < md.index('| Dataset')
    assert 'tools/test.py cfg/a.py a.pth --work-dir' in md
    det = read_csv(out / 'table4_detection.csv')
    # no provenance record: the training-set size is unknown, not claimed
    assert det[0][-1] == '# Train Samples'
    assert det[1] == ['YOLOv8-m', '78.3', '62.1', '68.4', '–']
    assert det[2] == ['Ours', '74.6', '–', '–', '–']  # NaN / missing
    seg = read_csv(out / 'table5_segmentation.csv')
    assert seg[0] == ['Dataset', 'Accuracy (%)', 'mAcc (%)', 'F1 (%)',
                      'IoU (%)', 'Dice (%)']
    assert seg[-1] == ['Average', '91.0', '–', '57.5', '51.8', '57.5']
    seg_md = (out / 'table5_segmentation.md').read_text()
    assert 'Pixel accuracy (Acc) = (TP + TN) / all pixels' in seg_md
    assert 'mAcc = mean class accuracy' in seg_md
    # bare metrics files: shown, but flagged as unchecked provenance
    assert '‡ Collected from results files whose provenance' in seg_md
    ano = read_csv(out / 'table6_anomaly.csv')
    assert ano[0] == ['Method', 'SimpleNet', 'Ours']
    assert ano[1] == ['P-AUC-ROC', '98.1', '96.1']
    assert ano[3] == ['# Training Samples', '–', '–']
    cross = read_csv(out / 'table12_cross_dataset.csv')
    assert cross[1] == ['MVTec AD → VisA', '83.2', '41.3']
    # names with spaces go through an override config, in id order
    override = tmp_path / 'wd' / 'table12_cross_dataset' / 'm2v' / \
        'vocabulary_override.py'
    assert "test_vocabulary = ['crack', 'broken edge']" in \
        override.read_text()
    assert str(override) in (out / 'table12_cross_dataset.md').read_text()
    eff = read_csv(out / 'data_efficiency.csv')
    assert eff[0] == ['Pre-training', 'N=25', 'N=50', 'N=100', 'N=200',
                      'N=350']
    assert eff[2] == ['IMDD-1M', '80.0', '90.0', '94.0', '96.0', '96.5']
    t13 = read_csv(out / 'data_efficiency_samples_to_target.csv')
    # IMDD-1M: 94 at 100, 96 at 200 -> 95 at 150; Random Init never
    assert t13[1] == ['Random Init', '>350', '–']
    assert t13[2] == ['IMDD-1M', '150', '–']
    png = (out / 'data_efficiency.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n'
    summary = (out / 'tables.md').read_text()
    assert summary.startswith('<!-- generated by: python tools/')
    assert 'Table 13.' in summary and 'Table 6.' in summary


def test_runs_fake_test_script_and_collects(tmp_path, fake_test):
    fake = fake_test
    cfg = tmp_path / 'stage2.py'
    cfg.write_text('model = dict()\n')
    spec = dict(work_dir=str(tmp_path / 'wd'), tables=[
        dict(kind='timestep', entries=[
            dict(name='Ours', config=str(cfg), checkpoint='c.pth',
                 timesteps=[10, 50, 200])]),
        dict(kind='cross_dataset', entries=[
            dict(name='imdd2mvtec', train='IMDD-1M', test='MVTec AD',
                 config=str(cfg), checkpoint='c.pth',
                 test_vocabulary=['crack', 'scratch'])]),
        dict(kind='ablation', entries=[
            dict(name='Full Model', config=str(cfg), checkpoint='full.pth'),
            dict(name='w/o Grounding Loss', config=str(cfg),
                 checkpoint='nogrnd.pth',
                 cfg_options={'model.grounding_loss': None})]),
    ])
    spec_file = tmp_path / 'spec.json'
    spec_file.write_text(json.dumps(spec))
    out = tmp_path / 'out'
    args = [str(spec_file), '--out-dir', str(out), '--test-script',
            str(fake)]
    assert bt.main(args) == 0
    ts = read_csv(out / 'timestep_sweep.csv')
    accs = {row[1]: float(row[2]) for row in ts[1:]}
    assert accs['50'] > accs['10'] > accs['200']  # fake: peak at t=50
    md = (out / 'timestep_sweep.md').read_text()
    assert '--cfg-options model.backbone.timestep=200' in md
    # safe names go through --cfg-options, as a list
    assert "--cfg-options 'test_vocabulary=[crack,scratch]'" in \
        (out / 'table12_cross_dataset.md').read_text()
    res = json.loads(next((tmp_path / 'wd' / 'table12_cross_dataset' /
                           'imdd2mvtec').glob('*/result.json')).read_text())
    assert res['metrics']['vocab_opt'] == '[crack,scratch]'
    assert res['record']['cfg_options'] == {
        'test_vocabulary': ['crack', 'scratch']}
    abl = (out / 'table7_ablation.md').read_text()
    assert 'model.grounding_loss=None' in abl
    def tables():  # tables.md's first line records the invocation
        return {p.name: p.read_text().split('\n', 1)[-1]
                for p in out.iterdir() if p.suffix in ('.md', '.csv')}

    first = tables()
    # collecting again (no runs) reproduces identical tables
    fake.write_text('raise SystemExit(3)\n')
    assert bt.main(args + ['--collect-only']) == 0
    assert tables() == first
    # a failing run is reported with its command
    with pytest.raises(RuntimeError, match='exit code 3'):
        bt.main(args + ['--rerun'])


def test_collect_only_reports_missing_rows(tmp_path):
    spec_file = tmp_path / 'spec.yaml'
    spec_file.write_text(yaml.safe_dump(dict(
        work_dir=str(tmp_path / 'wd'), tables=[dict(
            kind='detection',
            entries=[dict(name='Ours', config='a.py', checkpoint='b')])])))
    out = tmp_path / 'o'
    assert bt.main([str(spec_file), '--out-dir', str(out),
                    '--collect-only']) == 0
    assert read_csv(out / 'table4_detection.csv')[1] == [
        'Ours', '–', '–', '–', '–']
    md = (out / 'table4_detection.md').read_text()
    assert 'Missing (no result matching the command' in md
    assert '- Ours: no results in' in md


def test_stale_results_are_refused(tmp_path, fake_test):
    """A stored result is reused only while config, checkpoint,
    cfg_options and data files are those of the printed command."""
    cfg = tmp_path / 'model.py'
    data = tmp_path / 'test.json'
    data.write_text('{"images": []}')
    cfg.write_text(f'model = dict()\ntest_dataloader = dict(dataset=dict('
                   f'ann_file={str(data)!r}))\n')
    ckpt_a, ckpt_b = tmp_path / 'a.pth', tmp_path / 'b.pth'
    ckpt_a.write_bytes(b'a1')
    ckpt_b.write_bytes(b'b1')
    wd = tmp_path / 'wd' / 'table5_segmentation'

    def spec(b_options=None):
        path = tmp_path / 'spec.yaml'
        path.write_text(yaml.safe_dump(dict(work_dir=str(tmp_path / 'wd'),
                                            tables=[dict(
            kind='segmentation', entries=[
                dict(name='A', config=str(cfg), checkpoint=str(ckpt_a)),
                dict(name='B', config=str(cfg), checkpoint=str(ckpt_b),
                     cfg_options=b_options or {})])])))
        return [str(path), '--out-dir', str(tmp_path / 'out'),
                '--test-script', str(fake_test)]

    def calls(name):
        path = wd / name / 'calls.txt'
        return len(path.read_text().split()) if path.is_file() else 0

    def rows():
        return read_csv(tmp_path / 'out' / 'table5_segmentation.csv')

    assert bt.main(spec()) == 0
    assert calls('A') == calls('B') == 1
    complete = rows()
    assert complete[-1][0] == 'Average' and not complete[-1][1].endswith('*')
    # the same command again: both results are reused, nothing reruns
    assert bt.main(spec()) == 0
    assert calls('A') == calls('B') == 1
    # A's checkpoint changed: --collect-only refuses A's stored numbers
    ckpt_a.write_bytes(b'a2')
    assert bt.main(spec() + ['--collect-only']) == 0
    table = rows()
    assert table[1][1:] == ['–'] * 5
    assert table[2] == complete[2]
    assert table[-1][1].endswith('*')  # partial mean over B only
    assert table[-1][1] == table[2][1] + '*'
    md = (tmp_path / 'out' / 'table5_segmentation.md').read_text()
    assert 'A: no result matching the command (stale:' in md
    assert 'checkpoint_sha256' in md and '\\* partial mean' in md
    # auto mode reruns A only, and the table is complete again
    assert bt.main(spec()) == 0
    assert (calls('A'), calls('B')) == (2, 1)
    assert not rows()[-1][1].endswith('*')
    # other cfg_options or another annotation file: stale as well
    assert bt.main(spec({'model.x': 3}) + ['--collect-only']) == 0
    assert rows()[2][1] == '–'
    assert 'cfg_options' in (tmp_path / 'out' /
                             'table5_segmentation.md').read_text()
    data.write_text('{"images": [], "changed": 1}')
    assert bt.main(spec() + ['--collect-only']) == 0
    assert rows()[1][1] == rows()[2][1] == '–'
    data.write_text('{"images": []}')
    # another commit: stale unless --ignore-commit (then said so)
    for res in wd.glob('*/*/result.json'):
        doc = json.loads(res.read_text())
        doc['record']['git_commit'] = '0' * 40
        res.write_text(json.dumps(doc))
    assert bt.main(spec() + ['--collect-only']) == 0
    assert rows()[1][1] == '–'
    assert bt.main(spec() + ['--collect-only', '--ignore-commit']) == 0
    assert rows()[1][1] != '–'
    assert 'commits: 000000000000' in (tmp_path / 'out' /
                                       'table5_segmentation.md').read_text()
    # a metrics file without provenance (older tools/test.py) is not reused
    legacy = wd / 'A' / '20000101_000000'
    legacy.mkdir(parents=True)
    (legacy / '20000101_000000.json').write_text('{"seg/acc": 0.99}')
    for stamp in wd.joinpath('A').iterdir():
        if stamp.is_dir() and stamp.name != legacy.name:
            for f in stamp.iterdir():
                f.unlink()
            stamp.rmdir()
    assert bt.main(spec() + ['--collect-only']) == 0
    assert rows()[1][1] == '–'
    assert 'no provenance record' in (tmp_path / 'out' /
                                      'table5_segmentation.md').read_text()


def test_per_category_rows_and_pooled_label(tmp_path, fake_test):
    """Table 5 per category: one row per category, the mean over the
    categories, a pooled entry labelled as such; the per-category runs
    get --cfg-options category=<name> and their own work dirs."""
    cfg = tmp_path / 'stage2.py'
    cfg.write_text("model = dict()\ncategories = ('bottle', 'cable')\n")
    (tmp_path / 'c.pth').write_bytes(b'c')
    spec = tmp_path / 'spec.yaml'
    spec.write_text(yaml.safe_dump(dict(work_dir=str(tmp_path / 'wd'),
                                        decimals=3, tables=[dict(
        kind='segmentation', metrics=[['Accuracy (%)', 'seg/acc']],
        entries=[
            dict(name='MVTec AD', config=str(cfg), categories='config',
                 checkpoint=str(tmp_path / 'c.pth')),
            dict(name='MVTec AD', config=str(cfg), protocol='pooled',
                 categories='config', checkpoint=str(tmp_path / 'c.pth'))
        ])])))
    out = tmp_path / 'out'
    assert bt.main([str(spec), '--out-dir', str(out), '--test-script',
                    str(fake_test)]) == 0
    rows = read_csv(out / 'table5_segmentation.csv')
    assert [r[0] for r in rows[1:]] == [
        'MVTec AD / bottle', 'MVTec AD / cable',
        'MVTec AD: mean of 2 categories', 'MVTec AD (pooled)', 'Average']
    results = {}
    for cat in ('bottle', 'cable'):
        res, = (tmp_path / 'wd' / 'table5_segmentation' / 'MVTec_AD' /
                cat).glob('*/result.json')
        data = json.loads(res.read_text())
        assert data['record']['cfg_options'] == {'category': cat}
        results[cat] = data['metrics']['seg/acc'] * 100
    assert rows[1][1] == f'{results["bottle"]:.3f}'
    assert rows[2][1] == f'{results["cable"]:.3f}'
    assert rows[1][1] != rows[2][1]
    assert rows[3][1] == f'{(results["bottle"] + results["cable"]) / 2:.3f}'
    md = (out / 'table5_segmentation.md').read_text()
    assert '--cfg-options category=cable' in md
    assert '| **MVTec AD: mean of 2 categories** |' in md


def test_spec_errors(tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text(yaml.safe_dump(dict(tables=[dict(kind='nope',
                                                    entries=[])])))
    with pytest.raises(bt.SpecError, match='bad.yaml.*kind'):
        bt.load_spec(str(bad))
    bad.write_text(yaml.safe_dump(dict(tables=[dict(
        kind='detection', entries=[dict(name='x', config='a.py')])])))
    with pytest.raises(bt.SpecError, match='needs config and checkpoint'):
        bt.load_spec(str(bad))
    with pytest.raises(bt.SpecError, match='not found'):
        bt.load_spec(str(tmp_path / 'missing.yaml'))


def test_samples_to_reach_and_vocabulary_helpers(tmp_path):
    assert bt.samples_to_reach([25, 50, 100], [90, 94, 96], 95) == 75
    assert bt.samples_to_reach([25, 50], [96, 97], 95) == 25
    assert bt.samples_to_reach([25, 50], [80, None], 95) is None
    assert bt.vocabulary_needs_config(['broken edge'])
    assert bt.vocabulary_needs_config(['01'])
    assert not bt.vocabulary_needs_config(['crack', 'pin-hole'])
    txt = tmp_path / 'names.txt'
    txt.write_text('crack\n\nbroken edge\n')
    assert bt.read_vocabulary(str(txt)) == ['crack', 'broken edge']
    coco = tmp_path / 'coco.json'
    coco.write_text(json.dumps({'categories': [{'id': 1, 'name': 'a'}]}))
    assert bt.read_vocabulary(str(coco)) == ['a']


def test_dry_run_prints_commands(tmp_path, capsys):
    spec_file = tmp_path / 'spec.yaml'
    spec_file.write_text(yaml.safe_dump(dict(
        work_dir=str(tmp_path / 'wd'), tables=[dict(
            kind='data_efficiency', samples=[25, 50], entries=[dict(
                name='IMDD-1M', config='configs/n{n}.py',
                checkpoint='w/n{n}/epoch_50.pth')])])))
    assert bt.main([str(spec_file), '--dry-run', '--gpus', '2']) == 0
    out = capsys.readouterr().out
    assert 'torch.distributed.run --nproc_per_node=2' in out
    assert 'configs/n25.py w/n25/epoch_50.pth' in out
    assert '--launcher pytorch' in out
    assert sys.executable in out


def test_footnote_for_results_with_random_frozen_networks(tmp_path):
    """A results file recording random frozen networks (FrozenSourcesHook
    writes ``frozen_sources``) gets a footnote under its table."""
    r = tmp_path / 'results'
    random_src = {'backbone.vae': {'kind': 'random', 'seed': 0},
                  'backbone.unet': {'kind': 'stage1_checkpoint',
                                    'sha256': 'ab' * 32}}
    real_src = {'backbone.vae': {'kind': 'hub', 'id': 'org/sd'}}
    table_spec = dict(kind='segmentation', entries=[
        dict(name='tiny', results=write_results(
            r / 'a.json', **{'seg/acc': 0.5, 'frozen_sources': random_src})),
        dict(name='paper-weights', results=write_results(
            r / 'b.json', **{'seg/acc': 0.6, 'frozen_sources': real_src})),
        dict(name='old-run', results=write_results(
            r / 'c.json', **{'seg/acc': 0.7}))])
    tables = bt.build_table(table_spec, bt.Executor(mode='collect'),
                            str(tmp_path / 'wd'))
    notes = [n for t in tables for n in t.notes]
    random_notes = [n for n in notes if 'RANDOM frozen' in n]
    assert len(random_notes) == 1
    assert 'tiny' in random_notes[0] and 'backbone.vae' in random_notes[0]
    assert 'backbone.unet' not in random_notes[0]
    assert random_notes[0] in tables[0].markdown()


def test_data_efficiency_seeds_mean_spread_and_per_seed(tmp_path, capsys):
    """``seeds``: one run per seed, mean ± sample sd over the seeds with a
    result (count shown, partial count when one is missing), the per-seed
    table, and ``{seed}`` / ``{seed_suffix}`` in paths and cfg_options."""
    r = tmp_path / 'results'

    def res(name, v):
        return write_results(r / f'{name}.json', **{'seg/iou': v})

    spec = dict(work_dir=str(tmp_path / 'wd'), tables=[dict(
        kind='data_efficiency', name='eff', samples=[25, 50],
        metrics=[['IoU (%)', 'seg/iou']], target=0.6,
        seeds={50: [0, 1, 2]}, entries=[
            dict(name='A', results={
                25: {0: res('a25', 0.40)},
                50: {0: res('a0', 0.60), 1: res('a1', 0.70),
                     2: res('a2', 0.65)}}),
            # seed 2 has no result: mean over the two present
            dict(name='B', results={
                25: {0: res('b25', 0.30)},
                50: {0: res('b0', 0.50), 1: res('b1', 0.54)}})])])
    spec_file = tmp_path / 'spec.yaml'
    spec_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / 'out'
    assert bt.main([str(spec_file), '--out-dir', str(out)]) == 0
    rows = read_csv(out / 'eff.csv')
    # A: mean 65, sd sqrt(((-5)^2 + 5^2 + 0) / 2) = 5
    assert rows[1] == ['A', '40.0', '65.0 ± 5.0 (3 seeds)']
    # B: mean 52, sd sqrt((2^2 + 2^2) / 1) = 2.83
    assert rows[2] == ['B', '30.0', '52.0 ± 2.8 (2 of 3 seeds)']
    per_seed = read_csv(out / 'eff_per_seed.csv')
    assert per_seed[0] == ['Pre-training', 'Seed', 'N=25', 'N=50']
    assert per_seed[1:] == [['A', '0', '40.0', '60.0'],
                            ['A', '1', '', '70.0'], ['A', '2', '', '65.0'],
                            ['B', '0', '30.0', '50.0'],
                            ['B', '1', '', '54.0'], ['B', '2', '', '–']]
    assert bt.SEEDS_NOTE in (out / 'eff.md').read_text()
    # the curve (samples to target) uses the means: A reaches 60 at
    # 25 + 25 * (60 - 40) / (65 - 40) = 45
    t13 = read_csv(out / 'eff_samples_to_target.csv')
    assert t13[1][:2] == ['A', '45'] and t13[2][:2] == ['B', '>50']

    spec_file.write_text(yaml.safe_dump(dict(
        work_dir=str(tmp_path / 'wd'), tables=[dict(
            kind='data_efficiency', samples=[50], seeds=[0, 1], entries=[
                dict(name='A', config='c.py',
                     checkpoint='w/a_n{n}{seed_suffix}/last.pth',
                     work_dir='w/eval/a_n{n}{seed_suffix}',
                     cfg_options={'train_dataloader.dataset.ann_file':
                                  'few/train_n{n}_seed{seed}.json'})])])))
    assert bt.main([str(spec_file), '--dry-run']) == 0
    printed = capsys.readouterr().out.splitlines()
    assert any('c.py w/a_n50/last.pth --work-dir w/eval/a_n50 '
               '--cfg-options train_dataloader.dataset.ann_file='
               'few/train_n50_seed0.json' in line for line in printed)
    assert any('c.py w/a_n50_seed1/last.pth --work-dir w/eval/a_n50_seed1 '
               '--cfg-options train_dataloader.dataset.ann_file='
               'few/train_n50_seed1.json' in line for line in printed)

    for bad in ([0, 0], [], ['1'], {50: 3}):
        with pytest.raises(bt.SpecError, match='seeds must be'):
            bt.seeds_at(dict(name='A', seeds=bad), {}, 50)
    assert bt.seeds_at(dict(name='A'), {}, 50) == [None]
    assert bt.seeds_at(dict(name='A'), dict(seeds={50: [1, 2]}), 25) == [0]


def test_val_threshold_chosen_on_val_then_tested(tmp_path, fake_test,
                                                 capsys):
    """``val_threshold``: the val run's chosen value becomes the test run's
    ``--cfg-options``; both commands are printed, both results reused."""
    cfg = tmp_path / 'stage2.py'
    cfg.write_text('model = dict()\n')
    entry = dict(name='A', config=str(cfg), checkpoint='a.pth',
                 val_threshold=dict(cfg_options={'split': 'val'},
                                    metric='seg/best_iou_thr',
                                    key='model.test_cfg.sem_seg_thr'))
    spec = dict(work_dir=str(tmp_path / 'wd'), tables=[dict(
        kind='ablation', name='thr', metrics=[
            ['IoU (%)', 'seg/iou'],
            ['thr (x100)', 'val_threshold/seg/best_iou_thr'],
            ['used (x100)', 'thr_used']], entries=[entry])])
    spec_file = tmp_path / 'spec.json'
    spec_file.write_text(json.dumps(spec))
    out = tmp_path / 'out'
    args = [str(spec_file), '--out-dir', str(out), '--test-script',
            str(fake_test)]
    assert bt.main(args) == 0
    wd = tmp_path / 'wd' / 'thr' / 'A'
    val = json.loads(next((wd / 'val_threshold').glob(
        '*/result.json')).read_text())
    chosen = val['metrics']['seg/best_iou_thr']
    assert val['record']['cfg_options'] == {'split': 'val'}
    test = json.loads(next(wd.glob('*/result.json')).read_text())
    assert test['record']['cfg_options'] == {
        'model.test_cfg.sem_seg_thr': chosen}
    assert test['metrics']['thr_used'] == chosen
    rows = read_csv(out / 'thr.csv')
    assert rows[1][2] == rows[1][3] == f'{chosen * 100:.1f}'
    md = (out / 'thr.md').read_text()
    val_cmd = md.index('--cfg-options split=val')
    assert val_cmd < md.index(f'model.test_cfg.sem_seg_thr={chosen}')
    # a second build reuses both results (no new calls)
    calls = [(wd / 'val_threshold' / 'calls.txt').read_text(),
             (wd / 'calls.txt').read_text()]
    assert bt.main(args) == 0
    assert [(wd / 'val_threshold' / 'calls.txt').read_text(),
            (wd / 'calls.txt').read_text()] == calls
    # collect mode without the val result: the row is missing, says why
    spec['work_dir'] = str(tmp_path / 'wd2')
    spec_file.write_text(json.dumps(spec))
    assert bt.main(args + ['--collect-only']) == 0
    assert 'no seg/best_iou_thr from A [val threshold]' in \
        (out / 'thr.md').read_text()
    assert bt.main([str(spec_file), '--dry-run']) == 0
    printed = capsys.readouterr().out
    assert 'split=val' in printed and \
        "'model.test_cfg.sem_seg_thr=<seg/best_iou_thr of the val run>'" \
        in printed
    entry['val_threshold'] = dict(key='x')
    spec_file.write_text(json.dumps(spec))
    with pytest.raises(bt.SpecError, match='val_threshold needs'):
        bt.main(args)
