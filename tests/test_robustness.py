"""Hostile input for transformer_ner: random Unicode, control characters,
very long tokens. Nothing may raise, every span must be valid, scores in
[0, 1], and nlp.pipe must equal nlp()."""
import math

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from thinc.api import fix_random_seed

from conftest import TRAIN_DATA
from util import ents, make_nlp, train

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


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(min_size=0, max_size=200), min_size=1, max_size=4))
def test_random_unicode(nlp, texts):
    docs = list(nlp.pipe(texts))
    for text, doc in zip(texts, docs):
        _check(doc)
        assert ents(doc) == ents(nlp(text))
