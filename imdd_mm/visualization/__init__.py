# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from .overlay import draw_heatmap, draw_instances, to_rgb_uint8
from .report import (Curve, ReportSample, render_html_report,
                     write_html_report)

__all__ = [
    'draw_heatmap', 'draw_instances', 'to_rgb_uint8', 'Curve',
    'ReportSample', 'render_html_report', 'write_html_report'
]
