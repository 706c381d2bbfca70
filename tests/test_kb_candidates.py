"""The candidate cascade: normalisation, abbreviations (Schwartz & Hearst),
the n-gram index, and the merged ranking (case, plural, typo, abbreviation),
with hypothesis properties."""
from typing import List

import numpy as np
import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spacy_llm_ner.kb import (
    EntityRecord,
    LinkerKB,
    expand_abbreviation,
    find_abbreviation_definitions,
    find_abbreviations,
    normalize,
)
from spacy_llm_ner.kb.candidates import entity_given_alias
from spacy_llm_ner.kb.ngrams import NgramIndex, trigram_features

NAMES = {
    "D006973": ("Hypertension", ["High Blood Pressure", "Blood Pressure, High"]),
    "D009369": ("Neoplasms", ["Tumor", "Tumors", "Cancer"]),
    "D004194": ("Disease", ["Diseases", "Illness"]),
    "D051436": ("Renal Insufficiency, Chronic", ["Chronic Kidney Disease", "Chronic Renal Insufficiency"]),
    "D000544": ("Alzheimer Disease", ["Alzheimer's disease", "Senile Dementia"]),
    "D003924": ("Diabetes Mellitus, Type 2", ["Type 2 Diabetes", "NIDDM"]),
    "D058246": ("Prehypertension", ["Pre Hypertension"]),
    "D001249": ("Asthma", []),
    "D003866": ("Depressive Disorder", ["Depression"]),
    "D006331": ("Heart Diseases", ["Cardiac Disease"]),
}


@pytest.fixture(scope="module")
def kb() -> LinkerKB:
    records = [EntityRecord(id=i, name=n, aliases=a) for i, (n, a) in NAMES.items()]
    return LinkerKB.from_records(spacy.blank("en").vocab, records)


def ids(cands) -> List[str]:
    return [c.entity_id for c in cands]


# -- normalisation ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Hypertension", "hypertension"),
        ("tumors", "tumor"),
        ("Diseases", "disease"),
        ("allergies", "allergy"),
        ("abscesses", "abscess"),
        ("Metastases", "metastase"),
        ("metastasis", "metastase"),
        ("Alzheimer's disease", "alzheimer disease"),
        ("Non-Hodgkin  lymphoma", "non hodgkin lymphoma"),
        ("Sjögren syndrome", "sjogren syndrome"),
        ("ﬁbrosis", "fibrose"),
        ("Diabetes Mellitus, Type 2", "diabete mellitus type 2"),
        ("--", ""),
    ],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_normalize_is_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once
    assert once == once.strip() and "  " not in once


# -- abbreviations -----------------------------------------------------------------


def test_schwartz_hearst_examples():
    text = (
        "Patients with chronic kidney disease (CKD) and heart failure (HF) were enrolled. "
        "We measured tumor necrosis factor alpha (TNF-alpha). HCC (hepatocellular carcinoma) recurred. "
        "Later, chronic kidney disease (CKD2) appeared and CKD (something else entirely) too."
    )
    found = find_abbreviations(text)
    assert found["CKD"] == "chronic kidney disease"
    assert found["HF"] == "heart failure"
    assert found["TNF-alpha"] == "tumor necrosis factor alpha"
    assert found["HCC"] == "hepatocellular carcinoma"  # short form (long form)
    defs = find_abbreviation_definitions(text)
    assert text[defs[0].start : defs[0].start + 3] == "CKD"
    # Both forms carry their offsets, in both orders of definition.
    for abbr in defs:
        assert text[abbr.start : abbr.start + len(abbr.short)] == abbr.short
        assert text[abbr.long_start : abbr.long_start + len(abbr.long)] == abbr.long
    assert {a.short: a.long_start for a in defs}["HCC"] == text.index("hepatocellular")
    spaced = "chronic kidney disease ( CKD ) worsened"
    (abbr,) = find_abbreviation_definitions(spaced)
    assert (spaced[abbr.start : abbr.start + 3], abbr.long_start) == ("CKD", 0)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(["chronic", "kidney", "disease", "(CKD)", "(KD)", "CKD", "(", ")", ", ", ". ", "  ",
                         "\n", "heart", "(heart failure)", "HF", "(HF;", "x-ray", "(X)"]),
        max_size=25,
    )
)
def test_abbreviation_offsets_point_at_both_forms(pieces):
    text = " ".join(pieces)
    for abbr in find_abbreviation_definitions(text):
        assert text[abbr.start : abbr.start + len(abbr.short)] == abbr.short
        assert text[abbr.long_start : abbr.long_start + len(abbr.long)] == abbr.long


@pytest.mark.parametrize(
    "text",
    [
        "The results (see Table 2) were clear.",
        "Blood pressure (p < 0.05) fell.",
        "An open parenthesis (never closed",
        "Doses (10 mg) were given.",
        "we saw (a)",
    ],
)
def test_no_false_abbreviations(text):
    assert find_abbreviations(text) == {}


def test_indomethacin_example():
    text = "After a single oral dose of 4 mg/kg indomethacin (IDM) to sodium and volume depleted rats plasma renin activity (PRA) fell."
    assert find_abbreviations(text) == {"IDM": "indomethacin", "PRA": "plasma renin activity"}


def test_expand_abbreviation():
    abbr = {"CKD": "chronic kidney disease", "SCC": "squamous cell carcinoma"}
    assert expand_abbreviation("CKD", abbr) == "chronic kidney disease"
    assert expand_abbreviation("SCCs", abbr) == "squamous cell carcinoma"
    assert expand_abbreviation("early CKD", abbr) == "early chronic kidney disease"
    assert expand_abbreviation("ckd", abbr) is None
    assert expand_abbreviation("CKD", None) is None


# -- n-gram index ----------------------------------------------------------------------


def test_trigram_features_are_char_wb():
    counts = trigram_features(["ab", "abc abc"])
    assert counts.shape[0] == 2
    assert counts[0].sum() == 2  # " ab", "ab "
    assert counts[1].sum() == 6 and counts[1].nnz == 3  # " ab", "abc", "bc " twice each


def test_ngram_cosine_matches_scikit_learn_ranking():
    sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
    texts = ["hypertension", "pulmonary hypertension", "hypotension", "breast cancer", "cancer of the breast"]
    queries = ["hypertensoin", "breast cancers"]
    vec = sklearn_text.TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3), lowercase=False)
    vec.fit(texts)
    expected = (vec.transform(queries) @ vec.transform(texts).T).toarray()
    index = NgramIndex.build(texts)
    got = index.search(index.query_vectors(queries), top_n=5, budget=0)
    for row, hits in zip(expected, got):
        assert [r for r, _ in hits] == [int(i) for i in np.argsort(-row) if row[i] > 0]


def test_pruned_search_returns_exact_cosines():
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefgh"), size=rng.integers(3, 9))) for _ in range(400)]
    index = NgramIndex.build(words)
    queries = index.query_vectors(words[:50])
    full = index.search(queries, top_n=400, budget=0)
    pruned = index.search(queries, top_n=10, budget=20, min_grams=2, rescore=400)
    for exact, approx in zip(full, pruned):
        exact_scores = dict(exact)
        # Common 3-grams are added back exactly: the scores are true cosines,
        # and the best match (the query itself) is found.
        assert all(score == pytest.approx(exact_scores[row], abs=1e-5) for row, score in approx)
        assert approx[0][1] == pytest.approx(exact[0][1], abs=1e-5)


# -- the cascade -----------------------------------------------------------------------


def test_exact(kb):
    first = kb.candidates("Hypertension")[0]
    assert (first.entity_id, first.source, first.score, first.alias) == ("D006973", "exact", 1.0, "Hypertension")


def test_case(kb):
    first = kb.candidates("hypertension")[0]
    assert (first.entity_id, first.source, first.score) == ("D006973", "normalized", 1.0)
    assert kb.candidates("HYPERTENSION")[0].entity_id == "D006973"


def test_plural_and_singular(kb):
    assert kb.candidates("tumours")[0].entity_id == "D009369"  # n-gram: British spelling
    assert kb.candidates("Tumors")[0].source == "exact"
    assert kb.candidates("heart disease")[0].entity_id == "D006331"
    first = kb.candidates("Diseases")[0]
    assert (first.entity_id, first.source) == ("D004194", "exact")
    first = kb.candidates("illnesses")[0]
    assert (first.entity_id, first.source) == ("D004194", "normalized")


def test_typo(kb):
    first = kb.candidates("hypertensoin")[0]
    assert first.entity_id == "D006973" and first.source == "ngram" and 0 < first.score < 1
    assert kb.candidates("alzheimers diesase")[0].entity_id == "D000544"


def test_abbreviation(kb):
    abbr = find_abbreviations("Patients with type 2 diabetes (T2D) were followed up.")
    first = kb.candidates("T2D", abbreviations=abbr)[0]
    assert (first.entity_id, first.source, first.query) == ("D003924", "abbreviation", "type 2 diabetes")
    assert "D003924" not in ids(kb.candidates("T2D"))
    assert "D003924" not in ids(kb.candidates("T2D", abbreviations=abbr, stages=("exact", "normalized", "ngram")))


def test_stages_and_top_k(kb):
    assert kb.candidates("hypertensoin", stages=("exact", "normalized")) == []
    assert kb.candidates("hypertension", stages=("exact",)) == []
    assert len(kb.candidates("disease", top_k=3)) == 3
    with pytest.raises(ValueError, match="unknown candidate stages"):
        kb.candidates("x", stages=("fuzzy",))


def test_ranking_prefers_exact_then_similarity(kb):
    cands = kb.candidates("pre hypertension")
    assert cands[0].entity_id == "D058246" and cands[1].entity_id == "D006973"
    scores = [c.score for c in cands]
    assert scores == sorted(scores, reverse=True)


def test_batch_equals_single(kb):
    mentions = ["hypertension", "tumours", "CKD", "asthmas", "nothing like it", ""]
    abbr = {"CKD": "chronic kidney disease"}
    assert kb.candidates_batch(mentions, abbreviations=abbr) == [kb.candidates(m, abbreviations=abbr) for m in mentions]
    per_mention = [abbr, None, abbr, None, None, None]
    batch = kb.candidates_batch(mentions, abbreviations=per_mention)
    assert batch[2][0].entity_id == "D051436"
    with pytest.raises(ValueError, match="abbreviation maps"):
        kb.candidates_batch(mentions, abbreviations=[abbr])


def test_entity_given_alias():
    np.testing.assert_allclose(entity_given_alias(np.array([1.0, 1.0]), np.array([0.8, 0.2])), [0.8, 0.2])
    np.testing.assert_allclose(entity_given_alias(np.array([0.5, 0.5]), np.array([np.nan, np.nan])), [0.5, 0.5])
    np.testing.assert_allclose(entity_given_alias(np.array([0.0, 0.0]), np.array([0.3, 0.3])), [0.5, 0.5])
    np.testing.assert_allclose(entity_given_alias(np.array([1.0, 1.0]), np.array([0.6, np.nan])), [0.5, 0.5])


MENTION = st.text(alphabet=st.sampled_from(list("abcdehilmnoprstuy ,-'ABCDHKT2")), max_size=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mention=MENTION, top_k=st.integers(1, 12), use_abbr=st.booleans())
def test_candidates_never_repeat_entities(kb, mention, top_k, use_abbr):
    abbr = {"CKD": "chronic kidney disease", "HT": "hypertension"} if use_abbr else None
    cands = kb.candidates(mention, top_k=top_k, abbreviations=abbr)
    assert len(cands) <= top_k
    assert len(set(ids(cands))) == len(cands)
    assert all(0.0 <= c.score <= 1.0 and 0.0 <= c.prior <= 1.0 for c in cands)
    assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)
    assert all(c.source in ("exact", "normalized", "ngram", "abbreviation") for c in cands)
