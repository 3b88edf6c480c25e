# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Run repository tools as a user would: a subprocess from the repo root
with the repository on PYTHONPATH."""
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def tool_env(**extra) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO_ROOT)] + [p for p in [env.get('PYTHONPATH')] if p])
    env.setdefault('OMP_NUM_THREADS', '1')
    env['PYTHON'] = sys.executable
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_tool(args, timeout=600, **env) -> subprocess.CompletedProcess:
    """Run ``args`` (a list; ``.py`` tools are run with this interpreter)
    and fail with the tool's output when it exits non-zero."""
    args = [str(a) for a in args]
    if args[0].endswith('.py'):
        args = [sys.executable] + args
    proc = subprocess.run(
        args,
        cwd=REPO_ROOT,
        env=tool_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f'{" ".join(args)} exited {proc.returncode}\n'
            f'--- stdout ---\n{proc.stdout[-4000:]}\n'
            f'--- stderr ---\n{proc.stderr[-6000:]}')
    return proc
