# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""tools/web_demo.py: the backend's checks, and the real page in headless
Chromium (Debian's ``chromium`` driven by Playwright): the page loads, an
image is submitted, the result image appears and differs from the input
where the model found defects; non-images and oversized uploads get a
message; the server listens on loopback only."""
import importlib.util
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from ..tiny_stage2 import TINY_STAGE2_CONFIG as CONFIG
from ..tiny_stage2 import save_tiny_stage2_checkpoint
from ._runner import REPO_ROOT, tool_env

VOCAB = ['scratch', 'crack']


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'imdd_tools_web_demo', REPO_ROOT / 'tools' / 'web_demo.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


web_demo = _load_tool()


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return save_tiny_stage2_checkpoint(
        tmp_path_factory.mktemp('ckpt') / 'tiny.pth')


@pytest.fixture(scope='module')
def inferencer(checkpoint):
    from imdd_mm.apis import DefectInferencer
    return DefectInferencer(CONFIG, weights=str(checkpoint),
                            vocabulary=VOCAB, device='cpu',
                            show_progress=False)


def _test_image(path: Path) -> np.ndarray:
    img = np.full((96, 96, 3), 150, np.uint8)
    cv2.line(img, (10, 20), (85, 70), (30, 30, 30), 3)
    assert cv2.imwrite(str(path), img)
    return img


def test_backend_checks(inferencer, tmp_path):
    backend = web_demo.DemoBackend(inferencer, max_side=64, max_bytes=4000)
    with pytest.raises(ValueError, match='Upload an image'):
        backend.load(None)
    big = tmp_path / 'big.png'
    cv2.imwrite(str(big), np.zeros((80, 20), np.uint8))
    with pytest.raises(ValueError, match='big.png: 20x80 pixels exceeds '
                       'the 64 px'):
        backend.load(str(big))
    heavy = tmp_path / 'heavy.png'
    rng = np.random.default_rng(0)
    cv2.imwrite(str(heavy), rng.integers(0, 256, (60, 60, 3), np.uint8))
    with pytest.raises(ValueError, match='heavy.png: .* MB is larger'):
        backend.load(str(heavy))
    junk = tmp_path / 'junk.png'
    junk.write_bytes(b'no image')
    with pytest.raises(ValueError, match='junk.png is not an image'):
        backend.load(str(junk))
    ok = tmp_path / 'ok.png'
    cv2.imwrite(str(ok), np.full((40, 50), 90, np.uint16) * 100)  # 16-bit
    with pytest.raises(ValueError, match='at least one defect name'):
        backend.run(str(ok), ' , ', 0.3)
    overlay, heatmap, rows, summary = backend.run(str(ok), 'dent, pit',
                                                  0.0)
    assert overlay.shape == heatmap.shape == (40, 50, 3)
    assert rows and {r[1] for r in rows} <= {'dent', 'pit'}
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    assert f'{len(rows)} instance(s)' in summary
    assert inferencer.vocabulary == ('dent', 'pit')
    inferencer.set_vocabulary(VOCAB)
    args = web_demo.parse_args([CONFIG, 'ckpt.pth'])
    assert args.host == '127.0.0.1'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _wait_http(url: str, proc, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f'web demo exited {proc.returncode}:\n'
                                 f'{proc.stdout.read()[-4000:]}')
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f'{url} did not answer within {timeout} s')


@pytest.mark.slow
def test_page_in_headless_chromium(checkpoint, inferencer, tmp_path):
    browser_bin = shutil.which('chromium') or shutil.which(
        'chromium-browser')
    if browser_bin is None:
        pytest.skip('no chromium on PATH (Debian: apt-get install chromium)')
    pytest.importorskip('gradio')
    playwright = pytest.importorskip('playwright.sync_api')
    image_path = tmp_path / 'part.png'
    image = _test_image(image_path)
    noisy = tmp_path / 'noisy.png'  # a real image above the upload limit
    cv2.imwrite(str(noisy), np.random.default_rng(1).integers(
        0, 256, (200, 200, 3), np.uint8))
    garbage = tmp_path / 'garbage.png'
    garbage.write_bytes(b'this is not a png')
    text = tmp_path / 'notes.txt'
    text.write_text('not an image')
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, 'tools/web_demo.py', CONFIG, str(checkpoint),
         '--vocab', ','.join(VOCAB), '--device', 'cpu', '--port',
         str(port), '--score-thr', '0', '--max-file-mb', '0.1'],
        cwd=REPO_ROOT, env=tool_env(GRADIO_TEMP_DIR=tmp_path / 'gradio',
                                    GRADIO_ANALYTICS_ENABLED='False'),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f'http://127.0.0.1:{port}/'
    try:
        _wait_http(url, proc, timeout=600)
        # loopback only: another address of this machine is refused
        try:
            other = socket.gethostbyname(socket.gethostname())
        except OSError:
            other = None
        if other and not other.startswith('127.'):
            with pytest.raises(OSError):
                socket.create_connection((other, port), timeout=5).close()
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=browser_bin,
                args=['--no-sandbox', '--disable-gpu',
                      '--disable-dev-shm-usage'])
            page = browser.new_page()
            page.goto(url, wait_until='networkidle', timeout=120000)
            assert 'defect' in page.title()
            page.locator('#upload input[type=file]').set_input_files(
                str(image_path))
            page.wait_for_timeout(2000)
            page.click('#detect')
            page.wait_for_selector('#overlay img', timeout=300000)
            page.wait_for_selector('#heatmap img', timeout=60000)
            src = page.locator('#overlay img').get_attribute('src')
            data = page.request.get(src).body()
            shown = cv2.imdecode(np.frombuffer(data, np.uint8),
                                 cv2.IMREAD_COLOR)
            summary = page.inner_text('#summary')
            # errors: a non-image with an image name, a text file, a big
            # upload; each gets a message on the page
            messages = {}
            for name, path in (('garbage', garbage), ('text', text),
                               ('big', noisy)):
                page = browser.new_page()
                page.goto(url, wait_until='networkidle', timeout=120000)
                page.locator('#upload input[type=file]').set_input_files(
                    str(path))
                page.wait_for_timeout(2000)
                page.click('#detect')
                page.wait_for_timeout(5000)
                messages[name] = page.inner_text('body')
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    # the shown overlay: the input where nothing was found, changed where
    # the model found instances (reference: the same model in this process)
    ref = inferencer(image, pred_score_thr=0.0)['predictions'][0]
    assert ref['instances'], 'the random model finds instances at thr 0'
    assert f'{len(ref["instances"])} instance(s)' in summary
    assert shown.shape == image.shape
    changed = np.abs(shown.astype(int) - image.astype(int)).max(-1) > 0
    import pycocotools.mask as mask_util
    union = np.zeros(image.shape[:2], bool)
    boxes = np.zeros(image.shape[:2], bool)
    for inst in ref['instances']:
        rle = dict(inst['mask_rle'],
                   counts=inst['mask_rle']['counts'].encode('ascii'))
        union |= mask_util.decode(rle).astype(bool)
        x0, y0, x1, y1 = (int(v) for v in inst['bbox_xyxy'])
        boxes[max(0, y0 - 20):y1 + 4, max(0, x0 - 4):x1 + 40] = True
    assert changed[union].mean() > 0.9  # masks are painted
    assert not changed[~boxes].any()  # far from any instance: untouched
    assert 'not an image this demo can read' in messages['garbage']
    assert 'Invalid file type' in messages['text'] or \
        'not an image' in messages['text']
    assert 'exceed the maximum allowed size' in messages['big'], \
        messages['big'][-500:]
