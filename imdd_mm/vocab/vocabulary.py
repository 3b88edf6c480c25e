# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Controlled vocabulary (>= 500 specialised terms) and a deterministic,
offline noun/phrase extractor over it (no NLTK, no downloads).

The vocabulary is the union of the taxonomy tables (defect types, products,
materials, domains; their text synonyms map to the canonical name) and
``data/vocabulary.csv`` (``term,kind,pos``: locations, scale, orientation,
shape, pattern, morphology, severity, root-cause terms, processes,
equipment, inspection and material-property terms).

Matching: text and terms are lower-cased and split into word tokens
(``_``/``-``/punctuation separate words, so ``"upper-left"`` ==
``"upper left"``); every token is singularised by a few fixed suffix rules
(``cracks`` -> ``crack``, ``scratches`` -> ``scratch``, ``cavities`` ->
``cavity``); the longest vocabulary phrase starting at each position wins,
scanning left to right. Results are canonical terms in order of first
occurrence, without duplicates.
"""
import csv
import re
from functools import lru_cache
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .taxonomy import data_path, load_taxonomy

__all__ = ['load_vocabulary', 'extract_nouns', 'extract_terms', 'tokenize',
           'NOUN_KINDS']

#: Vocabulary kinds whose terms are nouns (``extract_nouns`` default).
NOUN_KINDS = ('defect_type', 'product', 'material', 'domain', 'location',
              'pattern', 'morphology', 'root_cause', 'process', 'equipment',
              'inspection', 'property')

_TOKEN_RE = re.compile(r'[^\W_]+', re.UNICODE)
_KEEP_S = ('ss', 'us', 'is', 'os', 'as', 'ys')


@lru_cache(maxsize=65536)
def _singular(tok: str) -> str:
    if len(tok) <= 3 or not tok.isalpha():
        return tok
    if tok.endswith('ies') and len(tok) > 4:
        return tok[:-3] + 'y'
    if tok.endswith(('sses', 'shes', 'ches', 'xes')):
        return tok[:-2]
    if tok.endswith('s') and not tok.endswith(_KEEP_S):
        return tok[:-1]
    return tok


def tokenize(text: str) -> List[str]:
    """Lower-cased, singularised word tokens of ``text``."""
    return [_singular(t) for t in _TOKEN_RE.findall(str(text).lower())]


@lru_cache(maxsize=1)
def load_vocabulary() -> List[Dict[str, str]]:
    """All controlled-vocabulary terms.

    Returns:
        list[dict]: ``{'term', 'kind', 'pos', 'synonyms'}`` per canonical
        term, sorted by (kind, term); ``kind`` is one of ``defect_type,
        product, material, domain`` or a ``vocabulary.csv`` kind; ``pos`` is
        ``'noun'`` or ``'adj'``. A term appearing in several tables is kept
        once, with the first kind in that order.
    """
    tax = load_taxonomy()
    seen: Dict[str, Dict[str, str]] = {}
    for table, kind in (('defect_types', 'defect_type'),
                        ('products', 'product'), ('materials', 'material'),
                        ('domains', 'domain')):
        for e in tax[table]:
            if e['name'] not in seen:
                seen[e['name']] = {'term': e['name'], 'kind': kind,
                                   'pos': 'noun',
                                   'synonyms': list(e['synonyms'])}
    with open(data_path('vocabulary.csv'), encoding='utf-8',
              newline='') as f:
        for r in csv.DictReader(f):
            if r['term'] not in seen:
                seen[r['term']] = {'term': r['term'], 'kind': r['kind'],
                                   'pos': r['pos'], 'synonyms': []}
    return sorted(seen.values(), key=lambda t: (t['kind'], t['term']))


@lru_cache(maxsize=1)
def _matcher() -> Tuple[Dict[Tuple[str, ...], Dict[str, str]],
                        Dict[str, Tuple[int, ...]]]:
    """token tuple -> term entry (canonical names beat synonyms), and first
    token -> phrase lengths starting with it (descending)."""
    vocab = load_vocabulary()
    lut: Dict[Tuple[str, ...], Dict[str, str]] = {}
    for t in vocab:  # canonical terms first
        key = tuple(tokenize(t['term']))
        if key:
            lut.setdefault(key, t)
    for t in vocab:
        for s in t['synonyms']:
            key = tuple(tokenize(s))
            if key:
                lut.setdefault(key, t)
    starts: Dict[str, set] = {}
    for key in lut:
        starts.setdefault(key[0], set()).add(len(key))
    return lut, {k: tuple(sorted(v, reverse=True)) for k, v in starts.items()}


def extract_terms(text: str,
                  kinds: Optional[Iterable[str]] = None,
                  pos: Optional[Sequence[str]] = None) -> List[str]:
    """Controlled-vocabulary phrases in ``text`` (longest match).

    Args:
        text: Free text (a caption).
        kinds: Keep only terms of these kinds (default: all).
        pos: Keep only these parts of speech (``'noun'``/``'adj'``/
            ``'generic'``).

    Returns:
        list[str]: canonical terms, first-occurrence order, no duplicates.
    """
    return list(_extract_cached(
        str(text), None if kinds is None else tuple(sorted(set(kinds))),
        None if pos is None else tuple(sorted(set(pos)))))


@lru_cache(maxsize=8192)
def _extract_cached(text: str, kinds: Optional[Tuple[str, ...]],
                    pos: Optional[Tuple[str, ...]]) -> Tuple[str, ...]:
    lut, starts = _matcher()
    toks = tokenize(text)
    kinds_set = set(kinds) if kinds is not None else None
    pos_set = set(pos) if pos is not None else None
    out: List[str] = []
    i = 0
    while i < len(toks):
        hit = None
        for n in starts.get(toks[i], ()):  # phrase lengths, longest first
            if i + n <= len(toks):
                hit = lut.get(tuple(toks[i:i + n]))
                if hit is not None:
                    i += n
                    break
        if hit is None:
            i += 1
            continue
        if kinds_set is not None and hit['kind'] not in kinds_set:
            continue
        if pos_set is not None and hit['pos'] not in pos_set:
            continue
        if hit['term'] not in out:
            out.append(hit['term'])
    return tuple(out)


def extract_nouns(text: str) -> List[str]:
    """Noun phrases of the controlled vocabulary found in ``text``.

    Deterministic and offline; this is what the grounding loss uses.

    Example:
        >>> extract_nouns('Steel strip with two scratches at the '
        ...               'upper-left corner')
        ['steel strip', 'scratch', 'upper-left corner']
    """
    return extract_terms(text, kinds=NOUN_KINDS, pos=('noun', ))
