# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from imdd_mm.vocab import extract_nouns, extract_terms, tokenize


def test_longest_match_plural_and_synonyms():
    text = ('Steel strip with two Scratches and rolled-in scale at the '
            'upper-left corner; several blow holes and micro-cracks.')
    assert extract_nouns(text) == [
        'steel strip', 'scratch', 'rolled-in scale', 'upper-left corner',
        'blowhole', 'microcrack'
    ]


def test_mapping_only_synonyms_do_not_match_free_text():
    # WM-811K's class "Center" maps by name, but "the center" is a location
    assert extract_nouns('a crack located at the center') == [
        'crack', 'center'
    ]
    assert extract_nouns('no visible defects') == []


def test_adjectives_excluded_from_nouns_but_available_as_terms():
    text = 'an isolated small vertical elongated crack'
    assert extract_nouns(text) == ['crack']
    assert extract_terms(text) == [
        'isolated', 'small', 'vertical', 'elongated', 'crack'
    ]
    assert extract_terms(text, kinds=['orientation']) == ['vertical']


def test_deterministic_and_first_occurrence_order():
    text = 'scratch, dent, scratches and a Dent near the weld seam'
    a = extract_nouns(text)
    assert a == extract_nouns(text) == ['scratch', 'dent', 'steel pipe weld']
    assert extract_nouns('') == []
    assert tokenize('Cavities_and-CRACKS') == ['cavity', 'and', 'crack']
