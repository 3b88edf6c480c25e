# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Unified IMDD taxonomy: domains, materials, products and defect types with
global ids, synonyms, a root-cause knowledge table and the mapping of every
source dataset's class names into it.

All content is data under ``imdd_mm/vocab/data/`` (shipped as package data):

* ``domains.csv``, ``materials.csv``, ``products.csv``,
  ``defect_types.csv`` - ``id`` is the global id (stable; new rows get new
  ids). ``synonyms`` are ``|``-separated; a synonym starting with ``~`` is
  only used to map *class names* (e.g. WM-811K's ``Center``), never to match
  free text (``"located at the center"`` is not a wafer pattern).
* ``root_causes.csv`` - ``key,root_cause``; ``key`` is a defect type or
  ``group:<group>`` (fallback); the first row of a key is the primary cause.
* ``source_categories.json`` - per SOURCE: ``default`` product/material,
  ``categories`` (source class name -> defect type name or a dict with
  ``defect_type``/``product``/``material``/``domain`` overrides),
  optional ``products`` (object key -> product/material, for multi-object
  sources such as MVTec AD whose class names may be ``"<object>/<defect>"``)
  and ``aliases`` (other SOURCE spellings).
"""
import csv
import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Dict, List, Optional

__all__ = [
    'load_taxonomy', 'map_category', 'normalize_name', 'root_causes',
    'data_path'
]


def data_path(name: str) -> str:
    """Filesystem path of a file in ``imdd_mm/vocab/data``."""
    return str(resources.files('imdd_mm.vocab').joinpath('data', name))


def _read_csv(name: str) -> List[Dict[str, str]]:
    with open(data_path(name), encoding='utf-8', newline='') as f:
        return [dict(r) for r in csv.DictReader(f)]


def normalize_name(name: str) -> str:
    """Lower-case, ``_``/whitespace runs -> one space, strip."""
    s = str(name).strip().lower().replace('_', ' ')
    return re.sub(r'\s+', ' ', s)


def _split_syn(field: str) -> List[str]:
    return [s.strip() for s in (field or '').split('|') if s.strip()]


@lru_cache(maxsize=1)
def load_taxonomy() -> Dict[str, Any]:
    """The unified taxonomy.

    Returns:
        dict with keys ``domains``, ``materials``, ``products``,
        ``defect_types`` (each a list of dicts with ``id``, ``name``,
        ``synonyms`` (text synonyms), ``name_synonyms`` (also the ``~``
        mapping-only ones) and table-specific fields), ``root_causes``
        (defect type or ``group:<g>`` -> list of causes), ``sources`` (the
        source mapping) and lookup dicts ``by_name`` per table.
        Treat it as read-only (it is cached).
    """
    tax: Dict[str, Any] = {}
    for table in ('domains', 'materials', 'products', 'defect_types'):
        rows = []
        for r in _read_csv(f'{table}.csv'):
            e: Dict[str, Any] = {k: v for k, v in r.items()}
            e['id'] = int(r['id'])
            syn = _split_syn(r.get('synonyms', ''))
            e['name_synonyms'] = [s.lstrip('~') for s in syn]
            e['synonyms'] = [s for s in syn if not s.startswith('~')]
            rows.append(e)
        ids = [e['id'] for e in rows]
        if len(set(ids)) != len(ids):
            raise ValueError(f'duplicate ids in {table}.csv')
        tax[table] = rows
    causes: Dict[str, List[str]] = {}
    for r in _read_csv('root_causes.csv'):
        causes.setdefault(r['key'], []).append(r['root_cause'])
    tax['root_causes'] = causes
    with open(data_path('source_categories.json'), encoding='utf-8') as f:
        tax['sources'] = json.load(f)
    by_name: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for table in ('domains', 'materials', 'products', 'defect_types'):
        lut: Dict[str, Dict[str, Any]] = {}
        for e in tax[table]:
            lut[normalize_name(e['name'])] = e
        for e in tax[table]:  # synonyms never shadow canonical names
            for s in e['name_synonyms']:
                lut.setdefault(normalize_name(s), e)
        by_name[table] = lut
    tax['by_name'] = by_name
    return tax


def root_causes(defect_type: str) -> List[str]:
    """Root causes of a defect type (primary first), falling back to its
    group's causes, then to the generic cause."""
    tax = load_taxonomy()
    e = tax['by_name']['defect_types'].get(normalize_name(defect_type))
    name = e['name'] if e else normalize_name(defect_type)
    if name in tax['root_causes']:
        return list(tax['root_causes'][name])
    if e and f'group:{e["group"]}' in tax['root_causes']:
        return list(tax['root_causes'][f'group:{e["group"]}'])
    return list(tax['root_causes']['group:other'])


def _source_table(source: Optional[str]) -> Dict[str, Any]:
    sources = load_taxonomy()['sources']
    if source is None:
        return sources['generic']
    key = normalize_name(source).replace(' ', '_')
    if key in sources:
        return sources[key]
    for name, table in sources.items():
        if key in (a.replace('-', '_') for a in table.get('aliases', ())) \
                or source in table.get('aliases', ()):
            return table
    return sources['generic']


def _lookup(table: str, name: Optional[str]) -> Optional[Dict[str, Any]]:
    if not name:
        return None
    return load_taxonomy()['by_name'][table].get(normalize_name(name))


def map_category(source: Optional[str],
                 name: Optional[str],
                 strict: bool = False) -> Dict[str, Any]:
    """Map a source class name into the unified taxonomy.

    Resolution: the source's ``categories`` table (exact name, then
    normalised name), else the defect-type names/synonyms; an
    ``"<object>/<defect>"`` name takes product/material from the source's
    ``products`` table. ``name=None`` gives the source defaults (product,
    material, domain) with ``defect_type=None``.

    Args:
        source: SOURCE name (e.g. ``'magnetic_tile'``); unknown sources use
            the generic defaults.
        name: Source class name.
        strict: Raise ``KeyError`` instead of mapping an unresolvable name
            to ``'other defect'``.

    Returns:
        dict: ``name, source, domain, material, product, defect_type,
        imdd_id`` (global defect-type id, None for ``name=None``),
        ``group`` and ``root_causes``.
    """
    table = _source_table(source)
    default = dict(table.get('default', {}))
    product = default.get('product')
    material = default.get('material')
    domain = default.get('domain')
    defect_name: Optional[str] = None
    overrides: Dict[str, Any] = {}
    if name is not None:
        raw = str(name)
        obj = None
        defect_key = raw
        if '/' in raw:
            obj, defect_key = raw.split('/', 1)
        products = table.get('products', {})
        if obj is not None:
            pinfo = products.get(obj) or products.get(normalize_name(obj))
            if pinfo:
                product = pinfo.get('product', product)
                material = pinfo.get('material', material)
        cats = table.get('categories', {})
        val = cats.get(defect_key)
        if val is None:
            nk = normalize_name(defect_key)
            for k, v in cats.items():
                if normalize_name(k) == nk:
                    val = v
                    break
        if isinstance(val, dict):
            overrides = dict(val)
            defect_name = overrides.get('defect_type')
        elif isinstance(val, str):
            defect_name = val
        if defect_name is None:
            e = _lookup('defect_types', defect_key)
            if e is None and strict:
                raise KeyError(f'{source}: class name {name!r} is not in the '
                               'IMDD taxonomy (add it to '
                               'imdd_mm/vocab/data/source_categories.json)')
            defect_name = e['name'] if e else 'other defect'
        product = overrides.get('product', product)
        material = overrides.get('material', material)
        domain = overrides.get('domain', domain)
    pe = _lookup('products', product)
    if pe is not None:
        product = pe['name']
        material = material or pe['material']
        domain = domain or pe['domain']
    me = _lookup('materials', material)
    if me is not None:
        material = me['name']
        domain = domain or me['domain']
    de = _lookup('defect_types', defect_name) if defect_name else None
    return {
        'name': name,
        'source': source,
        'domain': domain or 'general industrial',
        'material': material or 'unspecified material',
        'product': product or 'industrial product',
        'defect_type': de['name'] if de else defect_name,
        'imdd_id': de['id'] if de else None,
        'group': de['group'] if de else None,
        'root_causes': root_causes(de['name']) if de else [],
    }
