"""A KB in several segments (streamed build, `add_entities`) is searched as
one index (#21): names are looked up by hash in every segment, the exact and
normalised stages give what one segment gives, and the n-gram stage's cuts
count over all segments, so its hit rate does not depend on the split."""
import random

import numpy as np
import pytest
from spacy.vocab import Vocab

from spacy_llm_ner.kb import EntityRecord, LinkerKB, write_kb
from spacy_llm_ner.kb.csr import SortedProbes
from spacy_llm_ner.kb.lookup import trie_keys
from spacy_llm_ner.kb.string_index import hash_strings

SYLLABLES = ["ka", "lo", "mi", "ner", "to", "pra", "zu", "vel", "dis", "on", "ar", "bex"]
HEADS = ["syndrome", "disease", "deficiency", "carcinoma", "fever"]


def _records(n: int):
    rng = random.Random(0)
    for i in range(n):
        words = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(rng.randint(1, 2))]
        name = " ".join(words + [rng.choice(HEADS)])
        acronym = "".join(w[0] for w in name.split()).upper()
        yield EntityRecord(id=f"E{i}", name=name.title(), aliases=[acronym, name + " type " + str(i % 3)],
                           prior=None if i % 5 == 0 else rng.random())


@pytest.fixture(scope="module")
def kbs(tmp_path_factory):
    records = list(_records(900))
    whole = LinkerKB.from_records(Vocab(), records)
    folder = tmp_path_factory.mktemp("split")
    write_kb(records, folder, segment_size=250)
    split = LinkerKB.load(folder, Vocab())
    assert len(split._segments) == 4
    return records, whole, split


def _queries(records):
    rng = random.Random(1)
    picked = rng.sample(records, 120)
    typo = [r.name[:3] + r.name[4:] for r in picked]
    return [r.name for r in picked] + [r.name.upper() + "S" for r in picked] + typo + [r.aliases[0] for r in picked]


def _tuples(cands):
    return [(c.entity_id, c.alias, round(c.prior, 9), c.source) for c in cands]


def test_hash_lookup_equals_trie_lookup(kbs):
    records, _, split = kbs
    strings = [r.name for r in records[:200]] + ["nothing like it", "", None] + [r.aliases[0] for r in records[:50]]
    hashes, present = hash_strings(strings)
    for seg in split._segments:
        assert seg.alias_hashes is not None and seg.norm_hashes is not None
        np.testing.assert_array_equal(
            seg.alias_hashes.keys(SortedProbes(hashes), present), trie_keys(seg.aliases, strings)
        )
        norms = [seg.norm_string(k) for k in range(len(seg.norms))]
        norm_hashes, norm_present = hash_strings(norms)
        np.testing.assert_array_equal(
            seg.norm_hashes.keys(SortedProbes(norm_hashes), norm_present), np.arange(len(norms))
        )
        np.testing.assert_array_equal(seg.norm_hashes.of_key, hash_strings(norms)[0])


@pytest.mark.parametrize("stages", [("exact",), ("exact", "normalized")])
def test_split_exact_stages_equal_one_segment(kbs, stages):
    records, whole, split = kbs
    queries = _queries(records)
    got = split.candidates_batch(queries, stages=stages, top_k=50)
    want = whole.candidates_batch(queries, stages=stages, top_k=50)
    assert [sorted(_tuples(c)) for c in got] == [sorted(_tuples(c)) for c in want]


@pytest.mark.parametrize("retrieval", ["words", "grams", "words+grams"])
def test_split_cascade_finds_what_one_segment_finds(kbs, retrieval):
    records, whole, split = kbs
    queries = _queries(records)
    truth = [r.id for r in random.Random(1).sample(records, 120)] * 4
    hits = {}
    for name, kb in (("whole", whole), ("split", split)):
        kb.config.ngram_retrieval = retrieval
        found = kb.candidates_batch(queries, top_k=10)
        hits[name] = np.mean([t in {c.entity_id for c in cs} for cs, t in zip(found, truth)])
        # The n-gram stage's names per query are counted over all segments.
        assert max(sum(c.source == "ngram" for c in cs) for cs in found) <= 10
    assert hits["split"] >= hits["whole"] - 0.01 and hits["whole"] > 0.9


def test_name_shared_across_segments_offers_every_entity(tmp_path):
    records = [EntityRecord(id=f"X{i}", name=f"zaporin deficiency {i}", aliases=["zapd"]) for i in range(6)]
    write_kb(records, tmp_path, segment_size=2)
    kb = LinkerKB.load(tmp_path, Vocab())
    assert len(kb._segments) == 3
    for query in ("ZAPDs", "zapdd"):  # normalised, and one typo away (n-gram stage)
        cands = [c for c in kb.candidates(query, top_k=10) if c.alias == "zapd"]
        assert {c.entity_id for c in cands} == {r.id for r in records}, query
        np.testing.assert_allclose([c.prior for c in cands], [1 / 6] * 6)


def test_search_sorted_equals_searchsorted():
    from spacy_llm_ner.kb.csr import best_per_query, search_sorted

    rng = np.random.default_rng(0)
    haystack = np.sort(rng.integers(0, 1000, 500))
    needles = rng.integers(-5, 1005, 300)
    for side in ("left", "right"):
        np.testing.assert_array_equal(search_sorted(haystack, needles, side), np.searchsorted(haystack, needles, side))
    # best_per_query keeps what a stable sort by (query, -score) keeps, ties included.
    q = rng.integers(0, 7, 400)
    score = rng.integers(0, 5, 400).astype(np.float32)  # many ties
    halves = [(q[:150], np.arange(150), score[:150]), (q[150:], np.arange(150, 400), score[150:])]
    got = best_per_query(halves, 9)
    order = np.lexsort((-score, q))
    rank = np.arange(400) - np.searchsorted(q[order], q[order])
    kept = order[rank < 9]
    want = [kept[kept < 150], kept[kept >= 150]]
    for (gq, grow, _), w in zip(got, want):
        assert sorted(grow.tolist()) == sorted(w.tolist())
        np.testing.assert_array_equal(gq, np.sort(gq))  # by query
