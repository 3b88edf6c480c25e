# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Timing, memory and result-writing helpers of the benchmarks
(``benchmarks/``) and ``tools/analysis_tools/benchmark.py``."""
import datetime
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import torch


def sync(device: torch.device) -> None:
    """Wait for queued device work (a no-op on the CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_median(fn: Callable[[], object],
                device: torch.device,
                repeats: int,
                warmup: int,
                clock: Callable[[], float] = time.perf_counter) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls.

    The device is synchronised around each call, so queued CUDA work is
    counted where it ran.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = clock()
        fn()
        sync(device)
        times.append(clock() - t0)
    return statistics.median(times)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> Optional[float]:
    """Peak allocated device memory since the last reset (None on CPU)."""
    if device.type != 'cuda':
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{platform.processor() or "cpu"} x{torch.get_num_threads()}'


def git_commit() -> Optional[str]:
    try:
        return subprocess.run(['git', 'rev-parse', 'HEAD'],
                              cwd=Path(__file__).resolve().parents[2],
                              capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def environment(device: torch.device) -> dict:
    """What a speed figure needs beside it: machine, versions, commit, date."""
    return dict(
        device=device_name(device),
        torch=torch.__version__,
        cuda=torch.version.cuda if device.type == 'cuda' else None,
        python=platform.python_version(),
        commit=git_commit(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec='seconds'))


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A Markdown table of ``rows`` (dicts) in ``columns`` order."""

    def fmt(v):
        if v is None:
            return '-'
        if isinstance(v, float):
            return f'{v:.3g}' if abs(v) < 100 else f'{v:.1f}'
        return str(v)

    lines = ['| ' + ' | '.join(columns) + ' |',
             '|' + '---|' * len(columns)]
    lines += ['| ' + ' | '.join(fmt(r.get(c)) for c in columns) + ' |'
              for r in rows]
    return '\n'.join(lines)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.')
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def write_results(out: Optional[str], name: str, records: List[dict],
                  env: dict, command: str, table: str) -> None:
    """Print ``table`` and, with ``out``, write ``<out>/<name>.json`` and
    ``<out>/<name>.md`` (both atomically)."""
    print(table)
    if not out:
        return
    out_dir = Path(out)
    write_atomic(out_dir / f'{name}.json',
                 json.dumps(dict(command=command, environment=env,
                                 records=records), indent=2) + '\n')
    write_atomic(out_dir / f'{name}.md',
                 f'`{command}`\n\n{env["device"]}, torch {env["torch"]}, '
                 f'{env["date"]}, commit {env["commit"]}\n\n{table}\n')
