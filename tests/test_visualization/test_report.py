# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""The self-contained HTML report: its content, that it fetches nothing,
and that a real headless browser (Debian's ``chromium``) renders it."""
import base64
import os
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from imdd_mm.visualization.report import (Curve, ReportSample,
                                          insert_report_section,
                                          render_html_report,
                                          roc_curve_points,
                                          write_html_report)

MAGENTA = (255, 0, 255)  # RGB of the sample images, found in screenshots
CURVE_BLUE = (31, 119, 180)  # matplotlib's first line colour (C0)
BROWSERS = ('chromium', 'chromium-browser', 'google-chrome',
            'google-chrome-stable')


def find_browser():
    """A Chromium binary ($CHROMIUM, else on PATH), or None."""
    env = os.environ.get('CHROMIUM')
    if env:
        return env if shutil.which(env) else None
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def run_browser(args, tmp_path, timeout=180):
    browser = find_browser()
    if browser is None:
        pytest.skip('no chromium binary found (Debian: apt-get install '
                    'chromium; or set $CHROMIUM)')
    cmd = [browser, '--headless', '--no-sandbox', '--disable-gpu',
           '--disable-dev-shm-usage', '--no-first-run',
           '--hide-scrollbars', f'--user-data-dir={tmp_path / "profile"}'
           ] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True,
                          timeout=timeout)


def _samples():
    h, w = 48, 64
    image = np.zeros((h, w, 3), np.uint8)
    image[:] = MAGENTA
    gt = np.zeros((1, h, w), bool)
    gt[0, 10:20, 10:30] = True
    pred = np.zeros((2, h, w), bool)
    pred[0, 11:21, 12:30] = True
    pred[1, 30:40, 40:60] = True
    score_map = np.zeros((h, w), np.float32)
    score_map[10:20, 10:30] = 0.9
    defective = ReportSample(
        name='crack_<001>.png', image=image,
        class_names=['scratch', 'crack'], gt_masks=gt, gt_labels=[1],
        pred_masks=pred, pred_labels=[1, 0], pred_scores=[0.87, 0.31],
        pred_boxes=np.array([[12, 11, 30, 21], [40, 30, 60, 40]],
                            np.float32),
        score_map=score_map, caption='A crack on a steel & tile surface.',
        image_label='crack (0.87)')
    normal = ReportSample(name='good_002.png', image=image.copy(),
                          class_names=['scratch', 'crack'],
                          image_label='normal (0.12)')
    return [defective, normal]


def _report_kwargs():
    return dict(
        tables={
            'Open-vocabulary results': {
                'base (scratch)': {'mask AP': 0.123456, 'box AP': 0.5},
                'novel (crack)': {'mask AP': 0.25, 'images': 12},
            },
            'Speed': {'Stage 2': {'s/iter': 1.5}},
        },
        curves=[
            Curve('Training loss', 'iteration', 'loss',
                  {'loss': ([0, 1, 2, 3], [2.0, 1.2, 0.9, 0.7])}),
            Curve('Image-level ROC', 'FPR', 'TPR', {
                'a': ([0, 0.5, 1], [0, 0.9, 1]),
                'b': ([0, 1], [0, 1])
            }),
        ],
        samples=_samples(),
        commands=['python tools/test.py cfg.py ckpt.pth --report r.html'],
        notes=['vocabulary <scratch, crack>'])


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp('report') / 'sub' / 'report.html'
    assert write_html_report(str(out), 'Demo <report>',
                             **_report_kwargs()) == str(out)
    return out


def test_single_self_contained_file(report):
    assert sorted(os.listdir(report.parent)) == ['report.html']  # no .tmp
    text = report.read_text(encoding='utf-8')
    assert text.startswith('<!DOCTYPE html>') and text.endswith('</html>')
    # nothing to fetch: no remote or relative resources, no scripts
    assert not re.search(r'(src|href)\s*=\s*["\']?\s*(https?:)?//', text,
                         re.I)
    assert not re.search(r'<(script|link|iframe)\b', text, re.I)
    srcs = re.findall(r'src="([^"]*)"', text)
    assert srcs and all(s.startswith('data:image/png;base64,') for s in srcs)
    # 2 curves + 3 images per sample, each a decodable PNG
    assert len(srcs) == 2 + 3 * 2
    shapes = []
    for src in srcs:
        png = base64.b64decode(src.split(',', 1)[1])
        img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None
        shapes.append(img.shape)
    assert shapes[2:] == [(48, 64, 3)] * 6  # samples at original size


def test_tables_curves_samples_escaped(report):
    text = report.read_text(encoding='utf-8')
    assert '<title>Demo &lt;report&gt;</title>' in text
    assert '<h2>Open-vocabulary results</h2>' in text
    assert '<th>mask AP</th><th>box AP</th><th>images</th>' in text
    assert ('<tr><td>base (scratch)</td><td>0.1235</td><td>0.5000</td>'
            '<td>–</td></tr>') in text
    assert '<td>novel (crack)</td><td>0.2500</td><td>–</td><td>12</td>' \
        in text
    assert '<h2>Speed</h2>' in text and '<td>1.5000</td>' in text
    assert 'alt="Training loss"' in text and 'alt="Image-level ROC"' in text
    assert 'crack_&lt;001&gt;.png' in text and 'crack_<001>' not in text
    assert 'ground truth: crack; predicted: crack (0.87)' in text
    assert 'ground truth: normal; predicted: normal (0.12)' in text
    assert 'caption: A crack on a steel &amp; tile surface.' in text
    assert 'vocabulary &lt;scratch, crack&gt;' in text
    assert '--report r.html' in text


def test_empty_report():
    text = render_html_report('nothing')
    assert '<h1>nothing</h1>' in text and '<img' not in text


def test_insert_report_section(tmp_path):
    out = str(tmp_path / 'r.html')
    write_html_report(out, 'T', tables={'Test metrics': {'a': {'v': 0.5}}})
    insert_report_section(out, 'Ours <vs> baselines', ['Run', 'IoU (%)'],
                          [['Ours', '12.5'], ['U-Net & co', '–']],
                          details='$ python tools/test.py a.py b.pth')
    text = open(out, encoding='utf-8').read()
    # before the report's own sections, escaped, with its details
    assert text.index('Ours &lt;vs&gt; baselines') < text.index(
        'Test metrics')
    assert '<td>U-Net &amp; co</td><td>–</td>' in text
    assert '<pre>$ python tools/test.py a.py b.pth</pre>' in text
    assert text.endswith('</body></html>')
    bad = tmp_path / 'bad.html'
    bad.write_text('<html><h1>cut')
    with pytest.raises(ValueError, match='bad.html'):
        insert_report_section(str(bad), 't', ['a'], [['1']])
    assert bad.read_text() == '<html><h1>cut'


def test_roc_curve_points():
    fpr, tpr = roc_curve_points([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
    assert fpr.tolist() == [0.0, 0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0, 1.0]
    fpr, tpr = roc_curve_points([0.1, 0.9], [1, 0])  # inverted
    assert fpr.tolist() == [0.0, 1.0, 1.0]
    assert tpr.tolist() == [0.0, 0.0, 1.0]
    for labels in ([1, 1], [0, 0]):
        fpr, tpr = roc_curve_points([0.2, 0.4], labels)
        assert len(fpr) == len(tpr) == 0


def _near(img, rgb, tol=12):
    return (np.abs(img.astype(int) - np.array(rgb)).max(-1) <= tol).sum()


def test_renders_in_headless_chromium(report, tmp_path):
    url = report.resolve().as_uri()
    dom = run_browser(['--dump-dom', url], tmp_path)
    assert dom.returncode == 0, dom.stderr[-3000:]
    assert 'Open-vocabulary results' in dom.stdout
    assert '0.1235' in dom.stdout and 'good_002.png' in dom.stdout

    shot = tmp_path / 'report.png'
    proc = run_browser([f'--screenshot={shot}', '--window-size=1200,2400',
                        url], tmp_path)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-3000:]
    img = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[:2] == (2400, 1200)
    rgb = img[..., ::-1]
    assert rgb.astype(np.float32).std() > 5  # not blank
    # the embedded images were decoded and painted: the sample images'
    # magenta and the curves' blue lines are on screen
    assert _near(rgb, MAGENTA) > 2000
    assert _near(rgb, CURVE_BLUE, tol=40) > 100
    # text was laid out: dark pixels of the headings and tables
    assert (rgb.max(-1) < 80).sum() > 2000
