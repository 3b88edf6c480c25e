# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""``tools/demo.py`` loaded as a module (it is a script, not a package)."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_demo_tool():
    spec = importlib.util.spec_from_file_location('imdd_demo_tool',
                                                  REPO / 'tools' / 'demo.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
