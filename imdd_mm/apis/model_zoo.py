# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Model names of the model zoo: the ``Models`` of every
``configs/**/metafile.yml`` (mmdet's metafile format)."""
from pathlib import Path
from typing import Dict, List, Optional

#: The repository's ``configs`` folder (imdd-mm is installed editable).
CONFIGS_ROOT = Path(__file__).resolve().parents[2] / 'configs'


def load_metafiles(configs_root: Optional[Path] = None) -> List[Dict]:
    """Every model entry of the metafiles under ``configs_root``.

    Returns:
        list[dict]: ``name``, ``config`` (absolute path), ``weights`` (None
        when the metafile lists none), ``collection`` and ``metafile``.
    """
    import yaml
    root = Path(configs_root) if configs_root is not None else CONFIGS_ROOT
    entries = []
    for metafile in sorted(root.rglob('metafile.yml')):
        data = yaml.safe_load(metafile.read_text()) or {}
        for model in data.get('Models') or []:
            entries.append(
                dict(name=model['Name'],
                     config=str(root.parent / model['Config']),
                     weights=model.get('Weights'),
                     collection=model.get('In Collection'),
                     metafile=str(metafile)))
    return entries


def find_model(name: str, configs_root: Optional[Path] = None) -> Dict:
    """The metafile entry of a model name; raises ``ValueError`` listing
    the known names when it is not a config file nor a known name."""
    entries = load_metafiles(configs_root)
    for entry in entries:
        if entry['name'] == name:
            return entry
    known = ', '.join(sorted(e['name'] for e in entries)) or 'none'
    raise ValueError(f'{name!r} is neither a config file nor a model name '
                     f'of the metafiles under {configs_root or CONFIGS_ROOT} '
                     f'(known: {known})')
