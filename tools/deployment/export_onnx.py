# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Export the Stage-2 head (pixel decoder + transformer decoder +
open-vocabulary classifier) to ONNX, with the vocabulary's text embeddings
as an input so that the defect names stay free at deploy time.

The graph takes the cached backbone maps (``feat_s8`` ... at the padded
input size) and ``text_embeddings`` (K, D), and returns ``cls_logits``
(B, Q, K+1) and ``mask_logits`` (B, Q, H, W), the outputs of
``OVMask2FormerHead.predict``; post-processing (instances, score map) stays
in Python (``IMDDMask2Former._postprocess_single``). ``--vocab`` also
writes the names' embeddings (``<out>.text_embeddings.npy``).
``--verify`` runs the graph with onnxruntime on CPU and compares it with
PyTorch. ``--backbone`` also attempts the frozen diffusion backbone.

Example:
    python tools/deployment/export_onnx.py configs/imdd/tiny/stage2_tiny.py \
        work_dirs/tiny/iter_40.pth --out work_dirs/tiny/head.onnx \
        --vocab "scratch,crack" --verify
"""
import imdd_mm  # noqa: F401,I001  (must precede mmdet: compat patches)

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config, DictAction


def parse_args():
    parser = argparse.ArgumentParser(
        description='Export the Stage-2 head to ONNX')
    parser.add_argument('config', help='Stage-2 config')
    parser.add_argument('checkpoint', help='Stage-2 checkpoint, or "none"')
    parser.add_argument('--out', required=True, help='output .onnx file')
    parser.add_argument(
        '--vocab', default='scratch,crack,stain',
        help='comma-separated names: their embeddings are written beside '
        'the graph and used as the example input')
    parser.add_argument(
        '--input-size', type=int, nargs=2, metavar=('H', 'W'),
        help='padded network input size; default: the test resize, '
        'rounded up to the preprocessor\'s pad_size_divisor')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument(
        '--verify', action='store_true',
        help='compare onnxruntime (CPU) with PyTorch on random features')
    parser.add_argument(
        '--backbone', action='store_true',
        help='also attempt the diffusion backbone: <out stem>_'
        'image_to_features.onnx (captioner + VAE + U-Net) and <out stem>_'
        'vae_unet.onnx (conditioning as an input)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def default_input_size(cfg) -> tuple:
    """The padded input size of the config's test pipeline."""
    size = None
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'].split('.')[-1] == 'Resize':
            size = step['scale']
    if size is None:
        raise SystemExit('no Resize in the test pipeline: pass --input-size')
    w, h = (size, size) if isinstance(size, int) else size  # mmcv: (w, h)
    div = int(cfg.model.get('data_preprocessor', {}).get(
        'pad_size_divisor', 1) or 1)
    return (-(-h // div) * div, -(-w // div) * div)


def verify(model, out_file: str, input_names, text: torch.Tensor,
           batch_input_shape) -> dict:
    """Max abs difference of onnxruntime vs PyTorch, for the example K and
    a K larger by two (the vocabulary axis is dynamic)."""
    import onnxruntime as ort
    from imdd_mm.deployment import Stage2HeadForExport, feature_shapes
    session = ort.InferenceSession(out_file,
                                   providers=['CPUExecutionProvider'])
    wrapper = Stage2HeadForExport(model.panoptic_head,
                                  batch_input_shape).eval()
    gen = torch.Generator().manual_seed(1)
    report = {}
    for k, names in ((text.shape[0], 'example'),
                     (text.shape[0] + 2, 'example+2')):
        feats = [torch.randn(s, generator=gen)
                 for s in feature_shapes(model, batch_input_shape)]
        emb = torch.randn(k, text.shape[1], generator=gen)
        with torch.no_grad():
            ref = [t.numpy() for t in wrapper(*feats, emb)]
        got = session.run(None, dict(zip(
            input_names, [f.numpy() for f in feats] + [emb.numpy()])))
        report[names] = dict(
            num_names=int(k),
            max_abs_diff=[float(np.abs(a - b).max())
                          for a, b in zip(ref, got)])
    return report


def _try_export(wrapper, inputs, names, out_file, output_names, opset):
    try:
        with torch.no_grad():
            torch.onnx.export(
                wrapper, inputs, out_file, input_names=names,
                output_names=output_names, opset_version=opset,
                dynamo=False)
    except Exception as err:  # noqa: BLE001 (report any exporter failure)
        Path(out_file).unlink(missing_ok=True)
        return f'failed: {type(err).__name__}: {str(err)[:300]}'
    return 'exported'


def export_backbone(model, out_stem: Path, batch_input_shape,
                    opset: int) -> dict:
    """Try to export (a) image -> features (captioner + VAE + U-Net) and
    (b) (image, conditioning) -> features (VAE + U-Net); for an exported
    graph, compare onnxruntime with PyTorch."""
    from imdd_mm.deployment import (DiffusionBackboneForExport,
                                    DiffusionFeaturesForExport)
    outputs = [f'feat_{k}' for k in model.feature_keys]
    gen = torch.Generator().manual_seed(2)
    img = torch.rand(1, 3, *batch_input_shape, generator=gen) * 2 - 1
    with torch.no_grad():
        cond = model.compute_condition(img)
    status = {}
    for name, wrapper, inputs, names in (
            ('image_to_features', DiffusionBackboneForExport(model),
             (img, ), ['img']),
            ('vae_unet', DiffusionFeaturesForExport(model), (img, cond),
             ['img', 'cond'])):
        path = out_stem.with_name(f'{out_stem.name}_{name}.onnx')
        with torch.no_grad():  # also caches the fixed noise (no generator
            ref = [t.numpy() for t in wrapper(*inputs)]  # in the graph)
        result = _try_export(wrapper.eval(), inputs, names, str(path),
                             outputs, opset)
        entry = dict(status=result)
        if result == 'exported':
            import onnxruntime as ort
            session = ort.InferenceSession(
                str(path), providers=['CPUExecutionProvider'])
            got = session.run(None, dict(zip(
                names, [t.numpy() for t in inputs])))
            entry.update(file=str(path), max_abs_diff=[
                float(np.abs(a - b).max()) for a, b in zip(ref, got)])
        status[name] = entry
    return status


def main() -> int:
    args = parse_args()
    from mmdet.apis import init_detector
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    ckpt = None if args.checkpoint.lower() == 'none' else args.checkpoint
    model = init_detector(cfg, ckpt, device='cpu')
    model.eval()
    vocab = [v.strip() for v in args.vocab.split(',') if v.strip()]
    if not vocab:
        raise SystemExit('--vocab needs at least one name')
    model.set_vocabulary(vocab)
    size = tuple(args.input_size) if args.input_size else \
        default_input_size(cfg)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from imdd_mm.deployment import export_head
    tmp = out.with_name(out.name + '.tmp')
    names = export_head(model, str(tmp), size, num_names=len(vocab),
                        opset=args.opset)
    tmp.replace(out)
    text = model.panoptic_head.class_embeddings.detach().cpu().float()
    np.save(out.with_suffix('.text_embeddings.npy'), text.numpy())
    info = dict(config=args.config, checkpoint=args.checkpoint,
                batch_input_shape=list(size), inputs=names,
                outputs=['cls_logits', 'mask_logits'], vocabulary=vocab,
                text_embeddings=str(out.with_suffix('.text_embeddings.npy')))
    print(f'head exported to {out} (inputs {", ".join(names)})')
    if args.verify:
        info['verify'] = verify(model, str(out), names, text, size)
        print('onnxruntime vs PyTorch:', json.dumps(info['verify']))
    if args.backbone:
        info['backbone'] = export_backbone(model, out.with_suffix(''),
                                           size, args.opset)
        print('backbone export:', json.dumps(info['backbone']))
    out.with_suffix('.json').write_text(json.dumps(info, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
