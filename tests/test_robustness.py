"""Hostile input for transformer_ner: random Unicode, control characters,
very long tokens. Nothing may raise, every span must be valid, scores in
[0, 1], and nlp.pipe must equal nlp()."""
import math

import numpy
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from thinc.api import fix_random_seed

from spacy_llm_ner.ml import crf
from spacy_llm_ner.ml.decoders import make_decoder
from spacy_llm_ner.ml.models import TagScores
from spacy_llm_ner.ml.tags import TagSet

from conftest import TRAIN_DATA
from util import ents, long_document, make_nlp, train

HOSTILE = [
    "",
    " ",
    "\n\n\t ",
    "a" * 5000,
    "😀🔥 aspirin 😀 causes 头痛 and مرض الكلى",
    "e\u0301\u0301\u0301 cisplatin\u200b\u200d renal failure",
    "\x00\x01\x1f control \x7f characters aspirin",
    "Aspirin " * 300,
]


# Tiny models are faster on one torch thread (and the machine is shared).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=["tok2vec", "transformer"])
def nlp(request, tiny_bert_dir):
    fix_random_seed(0)
    pipeline = make_nlp(request.param, model_dir=tiny_bert_dir)
    train(pipeline, TRAIN_DATA, steps=40)
    return pipeline


def _check(doc):
    group = doc.spans["transformer_ner"]
    previous_end = 0
    for ent in doc.ents:
        assert 0 <= ent.start < ent.end <= len(doc)
        assert ent.start >= previous_end
        previous_end = ent.end
    for score in group.attrs["scores"]:
        assert math.isfinite(score) and 0.0 <= score <= 1.0
    assert len(group) == len(group.attrs["scores"])


def test_hostile_texts(nlp):
    docs = list(nlp.pipe(HOSTILE, batch_size=3))
    for text, doc in zip(HOSTILE, docs):
        _check(doc)
        assert ents(doc) == ents(nlp(text))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(min_size=0, max_size=200), min_size=1, max_size=4))
def test_random_unicode(nlp, texts):
    docs = list(nlp.pipe(texts))
    for text, doc in zip(texts, docs):
        _check(doc)
        assert ents(doc) == ents(nlp(text))


@pytest.mark.parametrize("decoder,scheme", [("softmax", "IOB"), ("crf", "IOB")])
def test_long_document_across_window_edges(tiny_bert_dir, decoder, scheme):
    """~20k tokens (about 1,700 backbone windows): entities are found
    wherever they fall, also where they straddle a window's start or end.
    (The CRF with BILUO is covered in test_robustness_linker.py.)"""
    fix_random_seed(0)
    nlp = make_nlp("transformer", model_dir=tiny_bert_dir, decoder=decoder, scheme=scheme)
    train(nlp, TRAIN_DATA, steps=100, learn_rate=0.005)
    text, gold = long_document(nlp, TRAIN_DATA, 20_000)
    doc = nlp(text)
    assert len(doc) >= 20_000
    _check(doc)
    found = set(ents(doc))
    straddling = [g for g in gold if g[-1]]
    assert len(straddling) >= 50
    assert sum(g[:3] in found for g in gold) >= 0.95 * len(gold)
    assert sum(g[:3] in found for g in straddling) >= 0.95 * len(straddling)


# -- decoding ----------------------------------------------------------------

FLOAT32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


def _valid_path(tagset, path) -> bool:
    trans, start, end = tagset.constraints()
    if len(path) == 0:
        return True
    return bool(start[path[0]] and end[path[-1]] and all(trans[a, b] for a, b in zip(path[:-1], path[1:])))


@st.composite
def _decoding_problem(draw):
    """Emission and transition scores of any float32 magnitude (a diverged
    or quantised model, not only a well-trained one), some tokens forced to
    "O" as pre-set entities force them."""
    scheme = draw(st.sampled_from(["BILUO", "IOB"]))
    tagset = TagSet(tuple(f"L{i}" for i in range(draw(st.integers(1, 3)))), scheme)
    n = len(tagset)
    scale = draw(st.sampled_from([1.0, 1e4, 1e12, 1e30]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = numpy.random.default_rng(seed)
    lengths = draw(st.lists(st.integers(0, 12), min_size=1, max_size=4))
    emissions = [(rng.normal(size=(k, n)) * scale).astype("f") for k in lengths]
    # A few hand-picked extreme values where hypothesis likes to look.
    for e in emissions:
        if e.size:
            e.flat[draw(st.integers(0, e.size - 1))] = draw(FLOAT32)
    trans, start, end = (rng.normal(size=shape) * scale for shape in ((n, n), (n,), (n,)))
    allowed = [None if not draw(st.booleans()) else _forced_o(rng, k, n) for k in lengths]
    scores = TagScores(emissions, trans.astype("f"), start.astype("f"), end.astype("f"))
    return tagset, scores, allowed


def _forced_o(rng, length: int, n_tags: int):
    mask = numpy.ones((length, n_tags), dtype=bool)
    mask[rng.random(length) < 0.3, 1:] = False
    return mask


@settings(max_examples=150, deadline=None)
@given(problem=_decoding_problem(), decoder=st.sampled_from(["crf", "softmax"]))
def test_decoding_is_valid_for_any_scores(problem, decoder):
    """The CRF (and the softmax decoder, which shares its Viterbi) never
    emits an invalid BILUO/IOB sequence, whatever the scores; spans stay in
    range, off forced-"O" tokens, and confidences are finite in [0, 1]."""
    tagset, scores, allowed = problem
    dec = make_decoder(decoder, tagset)
    params = dec.params(scores)
    for emissions, mask in zip(scores.emissions, allowed):
        if len(emissions) == 0:
            continue
        unary = dec.unary(numpy.asarray(emissions, dtype="f8"))
        padded, lengths = crf.pad([unary])
        (path,) = crf.viterbi(padded, lengths, params, None if mask is None else mask[None])
        assert len(path) == len(emissions)
        assert _valid_path(tagset, path), [tagset.tags[t] for t in path]
        if mask is not None:
            assert all(mask[i, t] for i, t in enumerate(path))
    for (spans, conf), emissions, mask in zip(dec.decode(scores, allowed), scores.emissions, allowed):
        assert len(spans) == len(conf)
        previous_end = 0
        for start, end, label in spans:
            assert previous_end <= start < end <= len(emissions) and 0 <= label < len(tagset.labels)
            previous_end = end
            if mask is not None:
                assert mask[start:end, 1:].any(axis=1).all()
        assert numpy.isfinite(conf).all() and ((conf >= 0.0) & (conf <= 1.0)).all(), conf
