# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""A self-contained HTML report: metric tables, metric curves and
predictions beside ground truth, every image embedded as a data URI (one
file to mail or attach to an inspection ticket; nothing to fetch).

Used by ``tools/demo.py`` and by ``tools/test.py --report`` (through
:class:`imdd_mm.engine.hooks.HTMLReportHook`).
"""
import base64
import html
import io
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .overlay import draw_heatmap, draw_instances, encode_png


@dataclass
class ReportSample:
    """One image with its ground truth and prediction (original size).

    Attributes:
        name (str): Shown under the images (e.g. the file name).
        image (np.ndarray): (H, W, 3) uint8 RGB.
        class_names (Sequence[str]): Names indexed by label.
        gt_masks (np.ndarray | None): (N, H, W) bool.
        gt_labels (Sequence[int]): (N,).
        pred_masks (np.ndarray | None): (M, H, W) bool.
        pred_labels (Sequence[int]): (M,).
        pred_scores (Sequence[float]): (M,).
        pred_boxes (np.ndarray | None): (K, 4) xyxy.
        score_map (np.ndarray | None): (H, W) defect probability.
        caption (str): Ground-truth caption, if any.
        image_label (str): Predicted image-level label and score.
    """
    name: str
    image: np.ndarray
    class_names: Sequence[str] = ()
    gt_masks: Optional[np.ndarray] = None
    gt_labels: Sequence[int] = ()
    pred_masks: Optional[np.ndarray] = None
    pred_labels: Sequence[int] = ()
    pred_scores: Sequence[float] = ()
    pred_boxes: Optional[np.ndarray] = None
    score_map: Optional[np.ndarray] = None
    caption: str = ''
    image_label: str = ''


@dataclass
class Curve:
    """A line plot: one or more named series over a shared x axis kind."""
    title: str
    xlabel: str
    ylabel: str
    series: Dict[str, Tuple[Sequence[float], Sequence[float]]] = field(
        default_factory=dict)


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;
margin:24px;color:#222;max-width:1400px}
h1{font-size:24px}h2{font-size:19px;border-bottom:1px solid #ddd;
padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0 16px}
th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:12px}
.samples{display:grid;grid-template-columns:repeat(auto-fill,
minmax(420px,1fr));gap:16px}
.sample{border:1px solid #ddd;padding:8px;border-radius:4px}
.sample img{width:32%;image-rendering:pixelated;margin-right:1%}
.cap{font-size:12px;color:#555}
.warn{background:#fdecea;border:2px solid #c62828;color:#8e0000;
padding:8px 12px;font-weight:bold}
"""


def _data_uri(png: bytes) -> str:
    return 'data:image/png;base64,' + base64.b64encode(png).decode('ascii')


def _fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f'{float(value):.4f}'
    return html.escape(str(value))


def _table(rows: Dict[str, Dict[str, object]]) -> str:
    """Rows keyed by name; columns are the union of the rows' keys."""
    columns: List[str] = []
    for row in rows.values():
        columns += [c for c in row if c not in columns]
    head = ''.join(f'<th>{html.escape(c)}</th>' for c in columns)
    body = ''
    for name, row in rows.items():
        cells = ''.join(f'<td>{_fmt(row[c]) if c in row else "–"}</td>'
                        for c in columns)
        body += f'<tr><td>{html.escape(name)}</td>{cells}</tr>'
    return f'<table><tr><th></th>{head}</tr>{body}</table>'


def _curve_png(curve: Curve) -> bytes:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    for name, (xs, ys) in curve.series.items():
        ax.plot(list(xs), list(ys), label=name)
    ax.set_title(curve.title)
    ax.set_xlabel(curve.xlabel)
    ax.set_ylabel(curve.ylabel)
    ax.grid(alpha=0.3)
    if len(curve.series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    plt.close(fig)
    return buf.getvalue()


def _sample_html(sample: ReportSample) -> str:
    gt = draw_instances(sample.image, sample.gt_masks, sample.gt_labels,
                        sample.class_names)
    pred = draw_instances(sample.image, sample.pred_masks,
                          sample.pred_labels, sample.class_names,
                          sample.pred_scores, sample.pred_boxes)
    heat = (draw_heatmap(sample.image, sample.score_map)
            if sample.score_map is not None else sample.image)
    gt_names = ', '.join(
        sample.class_names[k] if k < len(sample.class_names) else str(k)
        for k in sample.gt_labels) or 'normal'
    imgs = ''.join(
        f'<img alt="{alt}" src="{_data_uri(encode_png(img))}">'
        for alt, img in (('ground truth', gt), ('prediction', pred),
                         ('defect heat map', heat)))
    caption = (f'<div class="cap">caption: {html.escape(sample.caption)}'
               '</div>' if sample.caption else '')
    return (f'<div class="sample">{imgs}<div><b>{html.escape(sample.name)}'
            f'</b> — ground truth: {html.escape(gt_names)}; predicted: '
            f'{html.escape(sample.image_label)}</div>{caption}'
            '<div class="cap">left: ground truth · middle: prediction · '
            'right: defect heat map</div></div>')


def render_html_report(title: str,
                       tables: Optional[Dict[str, Dict[str, Dict]]] = None,
                       curves: Sequence[Curve] = (),
                       samples: Sequence[ReportSample] = (),
                       commands: Sequence[str] = (),
                       notes: Sequence[str] = (),
                       warnings: Sequence[str] = ()) -> str:
    """Build the report's HTML text.

    Args:
        title (str): Page title.
        tables (dict): ``{table title: {row name: {column: value}}}``.
        curves (Sequence[Curve]): Plots rendered to embedded PNGs.
        samples (Sequence[ReportSample]): Predictions beside ground truth.
        commands (Sequence[str]): Commands that produced the results.
        notes (Sequence[str]): Free-text paragraphs.
        warnings (Sequence[str]): Shown first, in a red box (e.g. random
            frozen networks).

    Returns:
        str: A complete HTML document with no external resources.
    """
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f'<title>{html.escape(title)}</title><style>{_CSS}</style>',
        f'</head><body><h1>{html.escape(title)}</h1>'
    ]
    parts += [f'<p class="warn">{html.escape(w)}</p>' for w in warnings]
    parts += [f'<p>{html.escape(n)}</p>' for n in notes]
    if commands:
        parts.append('<h2>Commands</h2><pre>' +
                     html.escape('\n'.join(commands)) + '</pre>')
    for name, rows in (tables or {}).items():
        parts.append(f'<h2>{html.escape(name)}</h2>{_table(rows)}')
    if curves:
        parts.append('<h2>Curves</h2>')
        parts += [
            f'<img alt="{html.escape(c.title)}" '
            f'src="{_data_uri(_curve_png(c))}">' for c in curves
        ]
    if samples:
        parts.append('<h2>Predictions beside ground truth</h2>'
                     '<div class="samples">')
        parts += [_sample_html(s) for s in samples]
        parts.append('</div>')
    parts.append('</body></html>')
    return ''.join(parts)


def write_html_report(out_file: str, title: str, **kwargs) -> str:
    """Render :func:`render_html_report` and write it atomically.

    Returns:
        str: ``out_file``.
    """
    text = render_html_report(title, **kwargs)
    out_dir = os.path.dirname(os.path.abspath(out_file))
    os.makedirs(out_dir, exist_ok=True)
    tmp = out_file + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, out_file)
    return out_file


def insert_report_section(out_file: str, title: str,
                          header: Sequence[str],
                          rows: Sequence[Sequence[object]],
                          details: str = '') -> str:
    """Add a table to a report written by :func:`write_html_report`, before
    its first section (atomic rewrite).

    Args:
        out_file (str): The report.
        title (str): Section heading.
        header (Sequence[str]): Column names; the first names the rows.
        rows (Sequence[Sequence]): One list of cells per row.
        details (str): Text shown folded under the table (e.g. the commands
            and provenance of its numbers).

    Returns:
        str: ``out_file``.
    """
    with open(out_file, encoding='utf-8') as f:
        text = f.read()
    if '</body>' not in text:
        raise ValueError(f'{out_file}: not a complete HTML report (no '
                         '</body>); nothing was changed')
    head = ''.join(f'<th>{html.escape(str(c))}</th>' for c in header)
    body = ''.join(
        '<tr>' + ''.join(f'<td>{_fmt(c)}</td>' for c in row) + '</tr>'
        for row in rows)
    section = (f'<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}'
               '</table>')
    if details:
        section += ('<details><summary>commands and provenance</summary>'
                    f'<pre>{html.escape(details)}</pre></details>')
    at = text.find('<h2>')
    at = at if at >= 0 else text.rindex('</body>')
    text = text[:at] + section + text[at:]
    tmp = out_file + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, out_file)
    return out_file


def roc_curve_points(scores: Sequence[float],
                     labels: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """False/true positive rates of an image-level score (labels 1 =
    defective), for plotting; empty arrays when a class is missing."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-scores, kind='stable')
    tps = np.cumsum(labels[order])
    fps = np.cumsum(~labels[order])
    return (np.concatenate([[0.0], fps / fps[-1]]),
            np.concatenate([[0.0], tps / tps[-1]]))
