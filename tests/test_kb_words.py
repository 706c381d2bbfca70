"""Word-level retrieval of the n-gram stage (kb/words.py, kb/word_hash.py)."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.vocab import Vocab

from spacy_llm_ner.kb import EntityRecord, LinkerKB
from spacy_llm_ner.kb.word_hash import Packed, deletion_hashes, string_hashes, words_of
from spacy_llm_ner.kb.words import MIN_FUZZY, WordIndex

FORMAT1 = Path(__file__).parent / "fixtures" / "kb_format1"
# Normalised words: no whitespace inside (normalize() splits on any).
word = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(word, min_size=1, max_size=6))
def test_deletion_hashes_are_the_hashes_of_the_deleted_strings(strings):
    owner, hashes = deletion_hashes(Packed.of(strings), min_len=2)
    for i, s in enumerate(strings):
        expected = set() if len(s) < 2 else set(string_hashes(Packed.of([s[:j] + s[j + 1:] for j in range(len(s))])).tolist())
        assert set(hashes[owner == i].tolist()) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(word, min_size=1, max_size=4), min_size=1, max_size=5))
def test_words_of_splits_like_str_split(texts):
    joined = ["  ".join(ws) for ws in texts]
    packed, text_of = words_of(joined)
    flat = [w for t in joined for w in t.split()]
    assert text_of.tolist() == [i for i, t in enumerate(joined) for _ in t.split()]
    assert string_hashes(packed).tolist() == string_hashes(Packed.of(flat)).tolist()
    picked = np.array([len(flat) - 1, 0])
    assert string_hashes(Packed.of(flat).take(picked)).tolist() == string_hashes(Packed.of([flat[-1], flat[0]])).tolist()


def test_equal_strings_hash_equally_wherever_they_are_packed():
    a = string_hashes(Packed.of(["lung", "carcinoma"]))
    b = string_hashes(Packed.of(["x", "carcinoma", "lung"]))
    assert a[0] == b[2] and a[1] == b[1] and len(set(a.tolist())) == 2


NAMES = ["neuroleptic malignant syndrome", "malignant hyperthermia", "lung carcinoma", "carcinoma", "renal failure"]


@pytest.mark.parametrize(
    "query,expected",
    [
        ("neuroleptic malignant syndrome", 0),
        ("neurolpetic syndrome", 0),  # transposition
        ("neuroleptc", 0),  # deletion
        ("neurolepptic", 0),  # insertion
        ("neuroleptix", 0),  # substitution
        ("hyperthermla", 1),
        ("renal", 4),
    ],
)
def test_a_query_one_edit_away_shortlists_the_name(query, expected):
    index = WordIndex.build(NAMES)
    q, rows = index.shortlist([query], lambda qq, rr: np.ones(len(rr), np.float32), budget=100, rescore=10)
    assert expected in rows.tolist()


def test_short_words_match_exactly_only():
    index = WordIndex.build(["abc1 kinase", "abd1 kinase", "xyz"])
    m = index.matches(["abc1"])
    assert len("abc1") < MIN_FUZZY and m.exact.all() and len(m.word) == 1


def test_the_rarest_words_retrieve_within_the_budget():
    names = [f"common head {i}" for i in range(50)] + ["rareword head"]
    index = WordIndex.build(names)
    # "head" is in every name: with a small budget only the rare word retrieves.
    q, rows = index.shortlist(["rareword head"], lambda qq, rr: np.ones(len(rr), np.float32), budget=5, rescore=100)
    assert rows.tolist() == [50]
    q, rows = index.shortlist(["rareword head"], lambda qq, rr: np.ones(len(rr), np.float32), budget=1000, rescore=100)
    assert len(rows) == 51 and rows[0] == 50  # both words: the name with both first


def records():
    return [EntityRecord(id=f"E{i}", name=name) for i, name in enumerate(NAMES)]


@pytest.mark.parametrize("retrieval", ["words+grams", "words", "grams"])
def test_the_cascade_finds_a_typo_either_way(retrieval):
    kb = LinkerKB.from_records(Vocab(), records())
    kb.config.ngram_retrieval = retrieval
    found = kb.candidates_batch(["neurolpetic malignant syndrome", "lung carcinomma"], top_k=3)
    assert found[0][0].entity_id == "E0" and found[0][0].source == "ngram"
    assert found[1][0].entity_id == "E2"


def test_the_word_index_is_saved_and_memory_mapped(tmp_path):
    kb = LinkerKB.from_records(Vocab(), records())
    kb.to_disk(tmp_path / "kb")
    loaded = LinkerKB.load(tmp_path / "kb", Vocab())
    words = loaded._segments[0].words
    assert words is not None and not words.rows.flags.writeable  # a read-only view of the mapped file
    assert [c.entity_id for c in loaded.candidates("hyperthermla")][:1] == ["E1"]


def test_a_kb_saved_without_a_word_index_retrieves_by_grams():
    kb = LinkerKB.load(FORMAT1, Vocab())
    assert all(seg.words is None for seg in kb._segments)
    kb.config.ngram_retrieval = "words"  # asked for, falls back to 3-grams
    name = kb.entity(kb.entity_ids[0]).name
    typo = name[:2] + name[3] + name[2] + name[4:] if len(name) > 5 else name
    assert kb.entity_ids[0] in [c.entity_id for c in kb.candidates(typo)]


def test_an_unknown_retrieval_is_refused():
    kb = LinkerKB.from_records(Vocab(), records())
    with pytest.raises(ValueError, match="ngram_retrieval"):
        type(kb.config)(ngram_retrieval="bm25")


def test_building_in_chunks_gives_the_same_index():
    texts = ["lung carcinoma", "neuroleptic malignant syndrome", "carcinoma", "renal failure", "lung"] * 3
    texts.append("hyperthermia malignant")
    whole, chunked = WordIndex.build(texts), WordIndex.build(texts, chunk_size=4)
    for name, array in whole.arrays().items():
        assert np.array_equal(array, chunked.arrays()[name]), name
