# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Interactive open-vocabulary defect demo (Gradio), as ODISE's and
anomalib's demos: upload an image (or pick an example), type any defect
names, adjust the score threshold, and see the instance overlay, the
defect heat map and a table of instances.

The server binds to 127.0.0.1 (loopback) unless ``--host`` says otherwise,
accepts uploads up to ``--max-file-mb`` and images up to ``--max-side``
pixels per side (larger images are refused rather than tiled, to keep the
demo responsive), and refuses files that are not images with a message.
Any image cv2 decodes works (grayscale, 16-bit, RGBA).

Example:
    python tools/web_demo.py configs/imdd/tiny/stage2_tiny.py \
        work_dirs/tiny/iter_40.pth --vocab "scratch,crack" \
        --examples data/magnetic_tile
    # then open http://127.0.0.1:7860
"""
import imdd_mm  # noqa: F401,I001  (must precede mmdet: compat patches)

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
from mmengine.config import DictAction

from imdd_mm.apis import DefectInferencer, list_images, read_image

TABLE_HEADERS = ['#', 'defect', 'score', 'x0', 'y0', 'x1', 'y1', 'area']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Gradio demo of open-vocabulary defect inference')
    parser.add_argument('config', help='Stage-2 config')
    parser.add_argument('checkpoint', help='Stage-2 checkpoint')
    parser.add_argument('--vocab', default='scratch,crack,stain,dent',
                        help='initial comma-separated defect names')
    parser.add_argument('--examples', default=None,
                        help='an image or folder offered as examples')
    parser.add_argument('--max-examples', type=int, default=8)
    parser.add_argument('--device', default='cuda:0' if
                        torch.cuda.is_available() else 'cpu')
    parser.add_argument('--host', default='127.0.0.1',
                        help='bind address (default: loopback only)')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--max-file-mb', type=float, default=10.0,
                        help='largest accepted upload (MB)')
    parser.add_argument('--max-side', type=int, default=4096,
                        help='largest accepted image side (pixels)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


class DemoBackend:
    """What the page calls: decode and check the upload, run the
    inferencer, format the outputs.

    Args:
        inferencer (DefectInferencer): The model.
        max_side (int): Largest accepted image side.
        max_bytes (int): Largest accepted file size.
    """

    def __init__(self, inferencer: DefectInferencer, max_side: int,
                 max_bytes: int) -> None:
        self.inferencer = inferencer
        self.max_side = int(max_side)
        self.max_bytes = int(max_bytes)

    def load(self, path: Optional[str]) -> np.ndarray:
        """The upload as BGR uint8; ``ValueError`` with a user message."""
        if not path:
            raise ValueError('Upload an image or pick an example first.')
        file = Path(path)
        size = file.stat().st_size
        if size > self.max_bytes:
            raise ValueError(f'{file.name}: {size / 1e6:.1f} MB is larger '
                             f'than the {self.max_bytes / 1e6:.1f} MB limit.')
        try:
            image = read_image(file)
        except (ValueError, OSError) as err:
            raise ValueError(f'{file.name} is not an image this demo can '
                             'read (empty, truncated or an unsupported '
                             'format).') from err
        h, w = image.shape[:2]
        if max(h, w) > self.max_side:
            raise ValueError(f'{file.name}: {w}x{h} pixels exceeds the '
                             f'{self.max_side} px limit per side.')
        return image

    def run(self, path: Optional[str], vocab_text: str, score_thr: float
            ) -> Tuple[np.ndarray, np.ndarray, List[list], str]:
        """Infer on one upload.

        Returns:
            tuple: overlay RGB, heat map RGB, instance table rows, summary
            markdown.
        """
        image = self.load(path)
        names = [v.strip() for v in (vocab_text or '').split(',')
                 if v.strip()]
        if not names:
            raise ValueError('Type at least one defect name, e.g. '
                             '"scratch, crack".')
        result = self.inferencer(
            image, vocabulary=names, pred_score_thr=float(score_thr),
            return_vis=True, return_score_map=False)
        record = result['predictions'][0]
        vis = result['visualization'][0]
        rows = [[i + 1, inst['label'], round(inst['score'], 3),
                 *[round(v, 1) for v in inst['bbox_xyxy']], inst['area']]
                for i, inst in enumerate(record['instances'])]
        summary = (f'**Image label:** {record["image_label"]} '
                   f'(score {record["image_score"]:.3f}); '
                   f'max defect probability '
                   f'{record["max_defect_probability"]:.3f}; '
                   f'{len(rows)} instance(s) with score >= '
                   f'{float(score_thr):.2f}.')
        return vis['overlay'], vis['heatmap'], rows, summary


def build_app(backend: DemoBackend, vocab: str, score_thr: float,
              examples: List[str]):
    """The Gradio Blocks page."""
    import gradio as gr

    def predict(path, vocab_text, thr):
        try:
            return backend.run(path, vocab_text, thr)
        except ValueError as err:
            raise gr.Error(str(err))

    with gr.Blocks(title='imdd-mm open-vocabulary defect demo') as app:
        gr.Markdown('# imdd-mm: find defects by name\n'
                    'Upload an image, type the defects to look for '
                    '(any words, comma-separated) and press **Detect**.')
        with gr.Row():
            with gr.Column():
                upload = gr.File(label='Image', file_types=['image'],
                                 type='filepath', elem_id='upload')
                names = gr.Textbox(label='Defect names', value=vocab,
                                   elem_id='vocab')
                thr = gr.Slider(0.0, 1.0, value=score_thr, step=0.01,
                                label='Score threshold', elem_id='thr')
                button = gr.Button('Detect', variant='primary',
                                   elem_id='detect')
                if examples:
                    gr.Examples(examples=[[e] for e in examples],
                                inputs=[upload], label='Examples')
            with gr.Column():
                overlay = gr.Image(label='Instances', type='numpy',
                                   format='png', elem_id='overlay')
                heatmap = gr.Image(label='Defect heat map', type='numpy',
                                   format='png', elem_id='heatmap')
        summary = gr.Markdown(elem_id='summary')
        table = gr.Dataframe(headers=TABLE_HEADERS, label='Instances',
                             elem_id='table', interactive=False)
        button.click(predict, inputs=[upload, names, thr],
                     outputs=[overlay, heatmap, table, summary])
    return app


def main(argv=None) -> int:
    args = parse_args(argv)
    vocab = [v.strip() for v in args.vocab.split(',') if v.strip()]
    if not vocab:
        raise SystemExit('--vocab needs at least one name')
    inferencer = DefectInferencer(
        model=args.config, weights=args.checkpoint, vocabulary=vocab,
        device=args.device, cfg_options=args.cfg_options,
        show_progress=False)
    examples = []
    if args.examples:
        _, files = list_images(args.examples)
        examples = [str(f) for f in files[:args.max_examples]]
    backend = DemoBackend(inferencer, args.max_side,
                          int(args.max_file_mb * 1e6))
    app = build_app(backend, ', '.join(vocab), args.score_thr, examples)
    allowed = sorted({str(Path(e).resolve().parent) for e in examples})
    print(f'open http://{args.host}:{args.port} in a browser', flush=True)
    app.queue(default_concurrency_limit=1).launch(
        server_name=args.host, server_port=args.port,
        max_file_size=int(args.max_file_mb * 1e6), allowed_paths=allowed,
        share=False, show_error=True, inbrowser=False)
    return 0


if __name__ == '__main__':
    sys.exit(main())
