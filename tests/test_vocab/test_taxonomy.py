# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
import os.path as osp

import pytest

from imdd_mm.vocab import (data_path, load_taxonomy, load_vocabulary,
                           map_category, root_causes)


def test_vocabulary_has_500_unique_terms_of_all_kinds():
    vocab = load_vocabulary()
    terms = [t['term'] for t in vocab]
    assert len(terms) >= 500
    assert len(set(terms)) == len(terms)
    kinds = {t['kind'] for t in vocab}
    for k in ('defect_type', 'material', 'product', 'location', 'shape',
              'orientation', 'scale', 'pattern', 'root_cause', 'process'):
        assert k in kinds, k
    assert {t['pos'] for t in vocab} <= {'noun', 'adj', 'generic'}


def test_data_files_ship_with_the_package():
    for name in ('domains.csv', 'materials.csv', 'products.csv',
                 'defect_types.csv', 'root_causes.csv', 'vocabulary.csv',
                 'source_categories.json'):
        assert osp.isfile(data_path(name)), name
    setup_py = open(osp.join(osp.dirname(__file__), '..', '..',
                             'setup.py')).read()
    assert "'imdd_mm.vocab': ['data/*']" in setup_py


def test_taxonomy_ids_unique_and_references_resolve():
    tax = load_taxonomy()
    for table in ('domains', 'materials', 'products', 'defect_types'):
        ids = [e['id'] for e in tax[table]]
        assert len(ids) == len(set(ids)) and min(ids) >= 1
    domains = {e['name'] for e in tax['domains']}
    materials = {e['name'] for e in tax['materials']}
    assert all(e['domain'] in domains for e in tax['materials'])
    assert all(e['domain'] in domains and e['material'] in materials
               for e in tax['products'])
    # every source class maps onto a real defect type (strict)
    for source, table in tax['sources'].items():
        for name in table['categories']:
            m = map_category(source, name, strict=True)
            assert m['imdd_id'] is not None, (source, name)
            assert m['domain'] in domains and m['material'] in materials


def test_every_defect_type_has_a_root_cause():
    for e in load_taxonomy()['defect_types']:
        causes = root_causes(e['name'])
        assert causes and all(isinstance(c, str) and c for c in causes)
    assert root_causes('blowhole')[0] == 'gas entrapment during sintering'


def test_map_category_examples():
    m = map_category('neu_det', 'rolled-in_scale')
    assert (m['defect_type'], m['product'], m['material'], m['domain']) == (
        'rolled-in scale', 'steel strip', 'hot-rolled steel', 'metal')
    # the same defect type from two sources shares the global id
    assert map_category('magnetic_tile', 'Crack')['imdd_id'] == \
        map_category('mvtec_ad', 'hazelnut/crack')['imdd_id']
    mv = map_category('mvtec_ad', 'bottle/broken_large')
    assert mv['product'] == 'bottle' and mv['defect_type'] == 'broken large'
    assert map_category('wm811k', 'Edge-Loc')['defect_type'] == \
        'wafer edge-local pattern'
    # synonyms resolve for unknown sources; unresolvable -> other defect
    assert map_category('my_factory', 'Scratches')['defect_type'] == \
        'scratch'
    assert map_category('my_factory', 'zzz')['defect_type'] == 'other defect'
    with pytest.raises(KeyError, match='zzz'):
        map_category('my_factory', 'zzz', strict=True)
    d = map_category('elpv', None)
    assert d['defect_type'] is None and d['product'] == 'solar cell'
