"""The vectorised cascade (#21): a batch gives what each mention gives on its
own, the batch normaliser equals `normalize`, and a KB saved in format 1
(before the n-gram forward rows were stored) loads and finds what that code
found."""
import json
import random
import string
from pathlib import Path

import numpy as np
import pytest
from spacy.vocab import Vocab

from spacy_llm_ner.kb import EntityRecord, LinkerKB, normalize
from spacy_llm_ner.kb.normalize_batch import normalize_batch
from spacy_llm_ner.kb.persistence import FORMAT_VERSION

FORMAT1 = Path(__file__).parent / "fixtures" / "kb_format1"
FORMAT2 = Path(__file__).parent / "fixtures" / "kb_format2"  # the same records, saved before the word index
FORMAT3 = Path(__file__).parent / "fixtures" / "kb_format3"  # ... before the names' hashes
WORDS = ["renal", "cardiac", "hepatic", "tumor", "fever", "syndrome", "disease", "acute", "chronic", "kidney",
         "insufficiency", "carcinoma", "dementia", "diabetes", "mellitus", "pressure", "blood", "lung"]


def _records(n: int, seed: int, prefix: str):
    rng = random.Random(seed)
    for i in range(n):
        words = rng.sample(WORDS, rng.randint(1, 3))
        yield EntityRecord(
            id=f"{prefix}{i}", name=" ".join(words).title(),
            aliases=[" ".join(reversed(words)), "".join(w[0] for w in words).upper()],
            prior=None if i % 4 == 0 else rng.random(),
            alias_priors={"".join(w[0] for w in words).upper(): 0.3} if i % 9 == 0 else {},
        )


@pytest.fixture(scope="module")
def kb():
    kb = LinkerKB.from_records(Vocab(), _records(300, 0, "A"))
    kb.add_entities(_records(60, 1, "B"))  # a second segment: names shared across segments
    return kb


def _mentions():
    rng = random.Random(5)
    names = [r.name for r in _records(300, 0, "A")][::5]
    typos = [n[:2] + n[3:] for n in names]
    return names + [n.upper() + "s" for n in names] + typos + ["RCD", "CKD", "CKD patients", "CKDs", "", "!!", "zzz"]


def _as_tuples(cands):
    return [(c.entity_id, c.alias, round(c.prior, 9), round(c.score, 5), c.source, c.query) for c in cands]


@pytest.mark.parametrize("stages", [("exact",), ("normalized",), ("exact", "normalized"), ("ngram",), None])
def test_batch_equals_one_by_one(kb, stages):
    mentions = _mentions()
    abbreviations = {"CKD": "chronic kidney insufficiency"}
    batch = kb.candidates_batch(mentions, stages=stages, abbreviations=abbreviations)
    for mention, got in zip(mentions, batch):
        alone = kb.candidates(mention, stages=stages, abbreviations=abbreviations)
        assert _as_tuples(got) == _as_tuples(alone), mention
    sources = {c.source for cs in batch for c in cs}
    if stages is None:
        assert sources == {"exact", "normalized", "ngram", "abbreviation"}


def test_batch_with_one_map_per_mention(kb):
    mentions = ["CKD", "CKD"]
    maps = [{"CKD": "chronic kidney insufficiency"}, None]
    first, second = kb.candidates_batch(mentions, abbreviations=maps)
    assert first and first[0].source == "abbreviation"
    assert all(c.source != "abbreviation" for c in second)


def test_batch_sizes_agree(kb):
    mentions = _mentions()
    whole = kb.candidates_batch(mentions)
    pieces = [c for i in range(0, len(mentions), 7) for c in kb.candidates_batch(mentions[i : i + 7])]
    assert [_as_tuples(c) for c in whole] == [_as_tuples(c) for c in pieces]


def test_normalize_batch_equals_normalize():
    rng = random.Random(0)
    alphabets = [string.printable, string.ascii_letters + " '-’", string.printable + "’éÉß蒂姆·库克İ"]
    texts = ["Alzheimer's disease", "it's", "'s", "tumors", "abscesses", "allergies", "metastasis", "", "  "]
    for alphabet in alphabets:
        texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(2000)]
    texts += [t + "'s" for t in texts[:300]] + [t + "s" for t in texts[:300]]
    # Words at the edges of the plural rules: -sses, -ies, -sis, -ss, -us, -is, short words.
    letters = "aeiousyb"
    texts += [
        " ".join("".join(rng.choice(letters) for _ in range(rng.randint(0, 6))) + rng.choice(
            ["s", "ss", "es", "sses", "ies", "sis", "us", "is", "'s", "s1", ""]) for _ in range(rng.randint(1, 4)))
        for _ in range(3000)
    ]
    for start in range(0, len(texts), 97):
        chunk = texts[start : start + 97]
        assert normalize_batch(chunk) == [normalize(t) for t in chunk]


@pytest.mark.parametrize("folder,version", [(FORMAT1, 1), (FORMAT2, 2), (FORMAT3, 3)])
def test_older_format_kb_loads_and_finds_the_same(folder, version):
    expected = json.loads((folder / "expected.json").read_text(encoding="utf8"))
    assert json.loads((folder / "meta.json").read_text(encoding="utf8"))["format"] == version
    kb = LinkerKB.load(folder, Vocab())
    assert len(kb) == 190
    abbreviations = {"CKD": "chronic kidney insufficiency"}
    for name, stages in [("exact", ["exact"]), ("exact+normalized", ["exact", "normalized"]), ("all", None)]:
        found = kb.candidates_batch(expected["queries"], stages=stages, abbreviations=abbreviations)
        for query, got, want in zip(expected["queries"], found, expected[name]):
            assert [c.entity_id for c in got] == [w[0] for w in want], (name, query)
            assert [(c.alias, c.source, c.query) for c in got] == [(w[1], w[4], w[5]) for w in want]
            np.testing.assert_allclose([c.prior for c in got], [w[2] for w in want], rtol=1e-9)
            np.testing.assert_allclose([c.score for c in got], [w[3] for w in want], atol=1e-5)


@pytest.mark.parametrize("folder", [FORMAT1, FORMAT2, FORMAT3])
def test_older_format_kb_saves_as_current_format(tmp_path, folder):
    kb = LinkerKB.load(folder, Vocab())
    kb.to_disk(tmp_path / "kb")
    assert json.loads((tmp_path / "kb" / "meta.json").read_text(encoding="utf8"))["format"] == FORMAT_VERSION
    assert (tmp_path / "kb" / "segments" / "0" / "ng_fwd_indptr.npy").exists()
    again = LinkerKB.load(tmp_path / "kb", Vocab())
    queries = json.loads((folder / "expected.json").read_text(encoding="utf8"))["queries"]
    assert [_as_tuples(c) for c in again.candidates_batch(queries)] == [
        _as_tuples(c) for c in kb.candidates_batch(queries)
    ]
    from_bytes = LinkerKB(Vocab(), entity_vector_length=0).from_bytes(kb.to_bytes())
    assert [_as_tuples(c) for c in from_bytes.candidates_batch(queries)] == [
        _as_tuples(c) for c in kb.candidates_batch(queries)
    ]


def test_forward_rows_equal_transposed_postings(kb):
    for seg in kb._segments:
        indptr, indices, data = seg.ngrams.forward
        by_row = seg.ngrams.postings.T.tocsr()
        by_row.sort_indices()
        np.testing.assert_array_equal(indptr, by_row.indptr)
        np.testing.assert_array_equal(indices, by_row.indices)
        np.testing.assert_allclose(data, by_row.data)


def test_rebuilt_with_words_the_kb_finds_what_it_found_before():
    """The same records built today (word index, words + 3-grams): every
    query's candidates of format 2 are still among its candidates (the union
    only adds names, and the ranking among the same names is the cosine)."""
    expected = json.loads((FORMAT2 / "expected.json").read_text(encoding="utf8"))
    old = LinkerKB.load(FORMAT2, Vocab())
    kb = LinkerKB.from_records(Vocab(), [old.entity(i) for i in old.entity_ids])
    assert all(seg.words is not None for seg in kb._segments)
    found = kb.candidates_batch(expected["queries"], top_k=30, abbreviations={"CKD": "chronic kidney insufficiency"})
    for query, got, want in zip(expected["queries"], found, expected["all"]):
        assert {w[0] for w in want} <= {c.entity_id for c in got}, query
