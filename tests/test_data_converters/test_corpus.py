# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Corpus builder: merge, unified ids, de-duplication, exclusion, few-shot
sampling, shards, atomic/deterministic output."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_converters.corpus import (CorpusInput, FewShotSampler,
                                    build_corpus, few_shot_coco,
                                    few_shot_corpus, hash_file, iter_corpus,
                                    iter_json_array, load_index)

REPO = Path(__file__).resolve().parents[2]


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, sort_keys=True) + '\n')


def write_image(path: Path, value: int, size: int = 8) -> None:
    """A tiny PNG whose bytes depend on ``value`` only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((size, size), value % 256, np.uint8)
    img[0, 0] = value // 256 % 256
    assert cv2.imwrite(str(path), img)


def make_converted(tmp: Path, name: str, cats, splits, imdd_ids,
                   image_root=None, write_images=True):
    """Write a converter output folder (format of data_converters.base).

    Args:
        cats: source class names (local ids 1..K).
        splits: {split: [(file_name, pixel_value, label or None
                  (None = normal), n_instances)]}.
        imdd_ids: {class name: global imdd id}.
    """
    root = Path(image_root) if image_root else tmp / f'{name}_root'
    out = tmp / name
    categories = [
        dict(id=i + 1, name=c, supercategory=name, domain='metal',
             material='steel', product=name, defect_type=c,
             imdd_id=imdd_ids[c], source=name) for i, c in enumerate(cats)
    ]
    img_id = ann_id = 0
    lines = []
    for split, items in splits.items():
        images, anns = [], []
        for file_name, value, label, n_inst in items:
            img_id += 1
            if write_images:
                write_image(root / file_name, value)
            lid = None if label is None else cats.index(label) + 1
            caption = (f'{name} steel surface, normal' if label is None else
                       f'{name} steel surface with {label}')
            images.append(
                dict(id=img_id, file_name=file_name, width=8, height=8,
                     is_normal=label is None, source=name,
                     original_path=file_name, license='CC BY 4.0',
                     split=split, image_label=lid, caption=caption,
                     caption_nouns=[name, 'steel'] + ([label] if label else
                                                      [])))
            for k in range(n_inst):
                ann_id += 1
                anns.append(
                    dict(id=ann_id, image_id=img_id, category_id=lid,
                         segmentation=[[0, 0, 2 + k, 0, 2 + k, 2, 0, 2]],
                         area=float(2 * (2 + k)), bbox=[0, 0, 2 + k, 2],
                         iscrowd=0, attributes={}))
            lines.append(
                json.dumps(
                    dict(file_name=file_name, image_root=str(root),
                         caption=caption, nouns=[], source=name, split=split,
                         is_normal=label is None, width=8, height=8)))
        _dump(out / 'annotations' / f'{split}.json',
              dict(info={}, licenses=[], images=images, annotations=anns,
                   categories=categories))
    (out / 'captions.jsonl').write_text(''.join(x + '\n' for x in lines))
    _dump(out / 'categories.json', categories)
    return out, root


@pytest.fixture
def two_sources(tmp_path):
    ids = {'scratch': 101, 'crack': 102, 'dent': 103}
    a, root_a = make_converted(
        tmp_path, 'src_a', ['scratch', 'crack'], {
            'train': [('tr/0.png', 1, 'scratch', 1), ('tr/1.png', 2, 'crack',
                                                       2),
                      ('tr/2.png', 3, None, 0), ('tr/3.png', 4, 'scratch',
                                                 1)],
            'test': [('te/0.png', 5, 'crack', 1), ('te/1.png', 6, None, 0)],
        }, ids)
    # src_b: b/0.png is a byte copy of src_a tr/1.png, b/1.png of src_a's
    # test image te/0.png (an evaluation image leaking through a 2nd source)
    b, root_b = make_converted(
        tmp_path, 'src_b', ['crack', 'dent'], {
            'train': [('b/0.png', 2, 'crack', 1), ('b/1.png', 5, 'crack', 1),
                      ('b/2.png', 7, 'dent', 3), ('b/3.png', 8, None, 0)],
        }, ids)
    return tmp_path, a, b


def test_iter_json_array_streams_small_chunks(tmp_path):
    obj = dict(info={'a': [1, 2, {'b': '}]'}]}, n=12345,
               images=[dict(id=i, s='x' * i, f=[1.5, -2e3])
                       for i in range(50)],
               annotations=[], tail='"q"')
    p = tmp_path / 'x.json'
    p.write_text(json.dumps(obj, indent=1))
    for chunk in (1, 3, 7, 1 << 20):
        assert list(iter_json_array(str(p), 'images', chunk)) == \
            obj['images']
        assert list(iter_json_array(str(p), 'annotations', chunk)) == []
        assert list(iter_json_array(str(p), 'missing', chunk)) == []
    bad = tmp_path / 'bad.json'
    bad.write_text('{"images": [{"id": 1}, {"id": ')
    with pytest.raises(ValueError, match='bad.json'):
        list(iter_json_array(str(bad), 'images', 4))


def test_merge_ids_dedup_and_categories(two_sources):
    tmp, a, b = two_sources
    out = tmp / 'corpus'
    index = build_corpus([str(a), str(b)], str(out), shard_size=3)
    recs = list(iter_corpus(str(out)))
    # 10 images, 2 byte-identical duplicates dropped (b/0, b/1)
    assert index['num_images'] == len(recs) == 8
    assert index['num_duplicates'] == 2
    assert [r['id'] for r in recs] == list(range(1, 9))
    dups = [json.loads(x) for x in (out / 'duplicates.jsonl').open()]
    assert {d['file_name'] for d in dups} == {'b/0.png', 'b/1.png'}
    assert {d['kept_file_name'] for d in dups} == {'tr/1.png', 'te/0.png'}
    # unified category ids = imdd ids; 'crack' shared by both sources
    cats = json.loads((out / 'categories.json').read_text())
    assert [c['id'] for c in cats] == [101, 102, 103]
    assert cats[1]['sources'] == ['src_a', 'src_b']
    assert cats[1]['name'] == 'crack'
    assert cats[1]['source_classes'] == ['src_a:crack', 'src_b:crack']
    by_name = {r['file_name']: r for r in recs}
    assert by_name['tr/1.png']['image_label'] == 102
    assert [i['category_id'] for i in by_name['tr/1.png']['instances']] \
        == [102, 102]
    assert by_name['b/2.png']['image_label'] == 103
    assert len(by_name['b/2.png']['instances']) == 3
    assert by_name['tr/2.png']['is_normal'] and \
        by_name['tr/2.png']['instances'] == []
    assert by_name['tr/0.png']['sha256'] == hash_file(
        str(tmp / 'src_a_root' / 'tr/0.png'))
    # image roots are relative to the corpus (corpus and data move together)
    assert by_name['b/2.png']['image_root'] == os.path.relpath(
        tmp / 'src_b_root', tmp / 'corpus')
    assert index['num_instances'] == sum(
        len(r['instances']) for r in recs) == 1 + 2 + 1 + 1 + 3
    assert index['sources']['src_b']['duplicates'] == 2
    # shards bounded by shard_size, offsets index every line
    assert [s['num_images'] for s in index['shards']] == [3, 3, 2]
    for s in index['shards']:
        data = (out / s['file']).read_bytes()
        offs = np.fromfile(out / s['offsets'], dtype='<i8')
        assert len(offs) == s['num_images']
        for o in offs:
            assert json.loads(data[o:data.index(b'\n', o)])['id'] >= 1
    assert not [f for f in os.listdir(out) if f.startswith('.corpus_tmp')]


def test_exclusion_specs_content_and_files(two_sources):
    tmp, a, b = two_sources
    out = tmp / 'corpus'
    index = build_corpus([f'A={a}', f'B={b}'], str(out),
                         exclude=['A:test'])
    recs = list(iter_corpus(str(out)))
    names = {r['file_name'] for r in recs}
    # A's test split is out, and so is its byte copy b/1.png in source B
    assert not names & {'te/0.png', 'te/1.png', 'b/1.png'}
    assert 'b/0.png' not in names  # duplicate of tr/1.png
    assert index['exclusions']['num_excluded'] == 3
    reasons = {json.loads(x)['file_name']: json.loads(x)['reason']
               for x in (out / 'excluded.jsonl').open()}
    assert reasons == {'te/0.png': 'A:test', 'te/1.png': 'A:test',
                       'b/1.png': 'content'}
    # the source name ('src_a') works too; split '*' = whole dataset
    index = build_corpus([str(a), str(b)], str(out), exclude=['src_b:*'])
    assert {r['source'] for r in iter_corpus(str(out))} == {'src_a'}
    # without exclusion by content, the copy in B survives
    build_corpus([str(a), str(b)], str(out), exclude=['src_a:test'],
                 exclude_by_content=False)
    assert 'b/1.png' in {r['file_name'] for r in iter_corpus(str(out))}
    # exclusion file: a hash, an absolute path, a relative path, a comment
    lst = tmp / 'exclude.txt'
    lst.write_text('# eval images\n'
                   f'{hash_file(str(tmp / "src_b_root" / "b/2.png"))}\n'
                   f'{tmp / "src_a_root" / "tr/0.png"}\n'
                   'tr/3.png\n')
    build_corpus([str(a), str(b)], str(out), exclude_files=[str(lst)])
    names = {r['file_name'] for r in iter_corpus(str(out))}
    assert not names & {'b/2.png', 'tr/0.png', 'tr/3.png'}
    assert 'tr/1.png' in names
    with pytest.raises(ValueError, match='dataset:split'):
        build_corpus([str(a)], str(out), exclude=['mvtec_ad'])
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        build_corpus([str(a)], str(out), exclude_files=[str(tmp / 'nope.txt')])


def test_rerun_byte_identical_and_parallel(two_sources):
    tmp, a, b = two_sources
    out1, out2 = tmp / 'c1', tmp / 'c2'
    build_corpus([str(a), str(b)], str(out1), shard_size=2, exclude=[
        'src_a:test'])
    snap = {p.relative_to(out1): p.read_bytes() for p in out1.rglob('*')
            if p.is_file()}
    # rerun into the same folder with nproc=2 gives the same bytes
    build_corpus([str(a), str(b)], str(out1), shard_size=2,
                 exclude=['src_a:test'], nproc=2)
    snap2 = {p.relative_to(out1): p.read_bytes() for p in out1.rglob('*')
             if p.is_file()}
    assert snap == snap2
    # a rerun with bigger shards removes the stale shard files
    build_corpus([str(a), str(b)], str(out2), shard_size=2)
    build_corpus([str(a), str(b)], str(out2), shard_size=100)
    assert sorted(os.listdir(out2 / 'shards')) == [
        'shard-00000.idx', 'shard-00000.jsonl'
    ]


def test_errors_name_the_file(two_sources):
    tmp, a, b = two_sources
    os.remove(tmp / 'src_b_root' / 'b/3.png')
    with pytest.raises(OSError, match='b/3.png'):
        build_corpus([str(a), str(b)], str(tmp / 'c'))
    index = build_corpus([str(a), str(b)], str(tmp / 'c'), on_error='skip')
    assert index['num_errors'] == 1
    err = json.loads((tmp / 'c' / 'errors.jsonl').read_text())
    assert err['file_name'] == 'b/3.png'
    # a category without imdd_id is refused, naming categories.json
    cats = json.loads((a / 'categories.json').read_text())
    cats[0]['imdd_id'] = None
    (a / 'categories.json').write_text(json.dumps(cats))
    with pytest.raises(ValueError, match='categories.json'):
        build_corpus([str(a)], str(tmp / 'c'))
    with pytest.raises(FileNotFoundError, match='nothere'):
        CorpusInput(str(tmp / 'nothere'))


def _many(tmp, counts, seed_offset=0):
    """One source with ``counts[c]`` images of class c (+ 30 normal)."""
    cats = sorted(counts)
    items, v = [], seed_offset
    for c in cats:
        for i in range(counts[c]):
            v += 1
            items.append((f'{c}/{i}.png', v, c, 1))
    for i in range(30):
        v += 1
        items.append((f'good/{i}.png', v, None, 0))
    return make_converted(tmp, 'many', cats, {'train': items},
                          {c: 200 + k for k, c in enumerate(cats)})


def test_few_shot_corpus_n_per_class_deterministic_nested(tmp_path):
    counts = {'a': 40, 'b': 12, 'c': 60}
    src, _ = _many(tmp_path, counts)
    corpus = tmp_path / 'corpus'
    build_corpus([str(src)], str(corpus), shard_size=16)
    chosen = {}
    for n in (5, 25, 50):
        sub = few_shot_corpus(str(corpus), str(tmp_path / f'fs{n}'), n,
                              seed=3)
        recs = list(iter_corpus(str(tmp_path / f'fs{n}')))
        per = {}
        for r in recs:
            per[r['image_label']] = per.get(r['image_label'], 0) + 1
        assert per == {200: min(n, 40), 201: min(n, 12), 202: min(n, 60)}
        assert not any(r['is_normal'] for r in recs)
        assert sub['few_shot']['per_class'] == {
            '200': min(n, 40), '201': min(n, 12), '202': min(n, 60)}
        ids = [r['id'] for r in recs]
        assert ids == sorted(ids)  # corpus order kept
        chosen[n] = set(ids)
        # deterministic: same seed, same files
        few_shot_corpus(str(corpus), str(tmp_path / 'again'), n, seed=3)
        assert (tmp_path / 'again' / 'shards' / 'shard-00000.jsonl'
                ).read_bytes() == (tmp_path / f'fs{n}' / 'shards' /
                                   'shard-00000.jsonl').read_bytes()
    assert chosen[5] < chosen[25] < chosen[50]  # nested samples
    other = few_shot_corpus(str(corpus), str(tmp_path / 'o'), 5, seed=4)
    assert {r['id'] for r in iter_corpus(str(tmp_path / 'o'))} != chosen[5]
    assert other['num_images'] == 15
    with_normal = few_shot_corpus(str(corpus), str(tmp_path / 'wn'), 5,
                                  seed=3, include_normal=True)
    assert with_normal['num_normal'] == 5 and with_normal['num_images'] == 20


def test_few_shot_sampler_order_independent_and_largest_instance():
    recs = [dict(source='s', file_name=f'{i}.png', image_label=i % 3,
                 is_normal=False) for i in range(90)]
    s1, s2 = FewShotSampler(7, seed=1), FewShotSampler(7, seed=1)
    for r in recs:
        s1.add(r, r['file_name'])
    for r in reversed(recs):
        s2.add(r, r['file_name'])
    assert s1.selected() == s2.selected()
    assert {k: len(v) for k, v in s1.selected().items()} == {0: 7, 1: 7, 2: 7}
    # no image label: the largest instance decides the class
    s = FewShotSampler(1)
    s.add(dict(source='s', file_name='x', image_label=None, instances=[
        dict(category_id=5, area=3.0), dict(category_id=9, area=10.0)]), 'x')
    assert s.selected() == {9: ['x']}
    with pytest.raises(ValueError):
        FewShotSampler(0)


def test_few_shot_coco(tmp_path):
    src, _ = _many(tmp_path, {'a': 10, 'b': 4})
    out = tmp_path / 'fs.json'
    res = few_shot_coco(str(src / 'annotations' / 'train.json'), str(out), 3,
                        seed=0)
    coco = json.loads(out.read_text())
    assert res['per_class'] == {'1': 3, '2': 3}
    assert len(coco['images']) == 6
    ids = {im['id'] for im in coco['images']}
    assert {a['image_id'] for a in coco['annotations']} == ids
    assert coco['info']['few_shot'] == dict(n=3, seed=0,
                                            include_normal=False)
    from pycocotools.coco import COCO
    assert len(COCO(str(out)).getImgIds()) == 6


def test_cli(two_sources):
    tmp, a, b = two_sources
    out = tmp / 'cli'
    cmd = [sys.executable, str(REPO / 'data_converters' / 'build_corpus.py'),
           str(a), str(b), '--out-dir', str(out), '--exclude', 'src_a:test',
           '--shard-size', '4', '--few-shot', '1', '2', '--no-progress']
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
    assert res.returncode == 0, res.stderr
    assert '6 images (2 normal)' in res.stdout
    index = load_index(str(out / 'index.json'))
    assert index['num_images'] == 6
    assert (out / 'fewshot' / 'n2_seed0' / 'index.json').is_file()
    sub = load_index(str(out / 'fewshot' / 'n1_seed0'))
    assert sub['num_images'] == 3  # one each of scratch, crack, dent


def test_end_to_end_with_real_converter_output(tmp_path):
    """mvtec_ad + btad converter outputs -> corpus without MVTec AD's test
    split; a byte copy of an MVTec test image inside BTAD is dropped too."""
    import shutil

    from tests.test_data_converters.sources_fakes import convert
    from tests.test_data_converters.test_sources_mvtec import _mvtec
    root = tmp_path / 'mvtec'
    _mvtec(root)
    convert('mvtec_ad', root, tmp_path / 'out_mvtec')
    broot = tmp_path / 'btad'
    from tests.test_data_converters.sources_fakes import write_img
    for i in range(2):
        write_img(broot / '01' / 'train' / 'ok' / f'{i:04d}.bmp')
    shutil.copy(root / 'bottle/test/good/000.png',
                broot / '01' / 'train' / 'ok' / '0002.png')
    convert('btad', broot, tmp_path / 'out_btad')
    # converter outputs do not record their root: it is given here
    with pytest.raises(ValueError, match='--image-root out_btad=DIR'):
        build_corpus([str(tmp_path / 'out_btad')], str(tmp_path / 'c0'))
    index = build_corpus(
        [CorpusInput(str(tmp_path / 'out_mvtec'), 'mvtec_ad',
                     image_root=str(root)),
         CorpusInput(str(tmp_path / 'out_btad'), image_root=str(broot))],
        str(tmp_path / 'corpus'), exclude=['mvtec_ad:test'])
    recs = list(iter_corpus(str(tmp_path / 'corpus')))
    assert index['num_images'] == len(recs) == 6 + 2  # 6 train + 2 BTAD
    assert {r['split'] for r in recs} == {'train'}
    assert index['exclusions']['num_excluded'] == 8 + 1
    assert all(r['caption'] and r['nouns'] for r in recs)
    ids = {c['id'] for c in index['categories']}
    from imdd_mm.vocab import map_category
    assert map_category('mvtec_ad', 'bottle/broken_large')['imdd_id'] in ids
