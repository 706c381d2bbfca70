"""Document-level abbreviation consistency of transformer_ner."""
import numpy
import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Span
from thinc.api import fix_random_seed

from conftest import TRAIN_DATA
from util import make_nlp, train

from spacy_llm_ner.kb.abbreviations import short_form_uses
from spacy_llm_ner.pipeline.abbreviations import propagate_abbreviations

TEXT = (
    "Puromycin aminonucleoside (PAN) induces nephrotic syndrome (NS) in rats. "
    "PAN was given daily. Rats with NS lost weight after PAN, and the control group (CG) did not."
)
NLP = spacy.blank("en")


def _tokens(doc, text, nth=0):
    """(start, end) token offsets of the nth occurrence of text."""
    start = -1
    for _ in range(nth + 1):
        start = doc.text.index(text, start + 1)
    span = doc.char_span(start, start + len(text))
    return span.start, span.end


def _texts(doc, spans, labels=("CHEM", "DIS")):
    return [(doc[s:e].text, labels[label]) for (s, e, label), _ in spans]


def test_short_forms_take_the_long_form_entity_label_and_confidence():
    doc = NLP(TEXT)
    long_chem, long_dis = _tokens(doc, "Puromycin aminonucleoside"), _tokens(doc, "nephrotic syndrome")
    spans = [((*long_chem, 0), 0.9), ((*long_dis, 1), 0.7)]
    out = propagate_abbreviations(doc, spans)
    assert _texts(doc, out) == [
        ("Puromycin aminonucleoside", "CHEM"), ("PAN", "CHEM"), ("nephrotic syndrome", "DIS"), ("NS", "DIS"),
        ("PAN", "CHEM"), ("NS", "DIS"), ("PAN", "CHEM"),
    ]
    scores = {doc[s:e].text: score for (s, e, _), score in out}
    assert scores["PAN"] == 0.9 and scores["NS"] == 0.7


def test_short_form_relabelled_to_agree_with_its_long_form():
    doc = NLP(TEXT)
    spans = [((*_tokens(doc, "Puromycin aminonucleoside"), 0), 0.9), ((*_tokens(doc, "PAN", 1), 1), 0.6)]
    out = propagate_abbreviations(doc, spans)
    assert ("PAN", "DIS") not in _texts(doc, out)
    assert _texts(doc, out).count(("PAN", "CHEM")) == 3


def test_consistent_mode_drops_short_forms_of_non_entities():
    doc = NLP(TEXT)
    cg = _tokens(doc, "CG", 0)
    spans = [((*cg, 1), 0.5)]
    assert propagate_abbreviations(doc, spans) == spans
    assert propagate_abbreviations(doc, spans, remove_unsupported=True) == []


def test_longer_entities_and_blocked_tokens_are_left_alone():
    doc = NLP(TEXT)
    long_chem = _tokens(doc, "Puromycin aminonucleoside")
    after = _tokens(doc, "after PAN")
    first_use = _tokens(doc, "PAN", 1)
    spans = [((*long_chem, 0), 0.9), ((*after, 1), 0.4)]
    out = propagate_abbreviations(doc, spans, blocked=set(range(*first_use)))
    assert ((*after, 1), 0.4) in out  # "PAN" inside a longer entity stays
    assert not any(s == first_use[0] for (s, _, _), _ in out)


def test_no_definitions_no_change():
    doc = NLP("Aspirin helps headache.")
    spans = [((0, 1, 0), 0.8)]
    assert propagate_abbreviations(doc, spans) == spans
    assert propagate_abbreviations(NLP(""), []) == []


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(st.sampled_from(["Aspirin", "acid", "(", ")", "AA", "PAN", "of", ".", "X", "toxic", "(PAN)"]), max_size=40),
    picks=st.lists(st.tuples(st.integers(0, 39), st.integers(1, 3), st.integers(0, 1)), max_size=8),
    consistent=st.booleans(),
)
def test_output_is_sorted_non_overlapping_and_within_the_doc(words, picks, consistent):
    doc = NLP(" ".join(words))
    spans, used = [], set()
    for start, length, label in picks:
        end = min(start + length, len(doc))
        if start < end and not used & set(range(start, end)):
            used |= set(range(start, end))
            spans.append(((start, end, label), 0.5))
    out = propagate_abbreviations(doc, sorted(spans), remove_unsupported=consistent)
    assert out == sorted(out)
    covered = [i for (s, e, _), _ in out for i in range(s, e)]
    assert len(covered) == len(set(covered)) and all(0 <= i < len(doc) for i in covered)


@pytest.mark.parametrize("mode", ["respect", "overwrite"])
def test_component_writes_propagated_entities_with_scores(mode):
    nlp = make_nlp("tok2vec", abbreviations="consistent", ents_mode=mode)
    train(nlp, TRAIN_DATA, steps=1)
    ner = nlp.get_pipe("transformer_ner")
    doc = nlp.make_doc(TEXT)
    start, end = _tokens(doc, "Puromycin aminonucleoside")
    preset = _tokens(doc, "PAN", 2)
    doc.ents = [Span(doc, *preset, label="PRESET")]
    chem = ner.labels.index("CHEM")
    ner.set_annotations([doc], [(numpy.array([[start, end, chem]], dtype="i"), numpy.array([0.8]))])
    group = doc.spans["transformer_ner"]
    assert len(group) == len(group.attrs["scores"])
    found = [(e.text, e.label_) for e in doc.ents]
    if mode == "respect":
        assert found == [("Puromycin aminonucleoside", "CHEM"), ("PAN", "CHEM"), ("PAN", "CHEM"), ("PAN", "PRESET")]
    else:
        assert found == [("Puromycin aminonucleoside", "CHEM"), ("PAN", "CHEM"), ("PAN", "CHEM"), ("PAN", "CHEM")]
    assert all(score == pytest.approx(0.8) for score in group.attrs["scores"])


def test_abbreviations_option_is_checked_and_survives_reload(tmp_path):
    with pytest.raises(ValueError, match="Unknown abbreviations 'all'"):
        make_nlp("tok2vec", abbreviations="all")
    fix_random_seed(0)
    nlp = make_nlp("tok2vec", abbreviations="propagate")
    train(nlp, TRAIN_DATA, steps=5)
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert loaded.get_pipe("transformer_ner").cfg["abbreviations"] == "propagate"
    docs = [TEXT, TRAIN_DATA[0][0], ""]
    assert [d.to_json() for d in loaded.pipe(docs)] == [loaded(t).to_json() for t in docs]


def test_config_override_of_inference_settings_wins_over_saved_cfg(tmp_path):
    fix_random_seed(0)
    nlp = make_nlp("tok2vec")
    train(nlp, TRAIN_DATA, steps=5)
    nlp.to_disk(tmp_path / "p")
    overrides = {"components": {"transformer_ner": {"abbreviations": "consistent", "threshold": 0.25}}}
    changed = spacy.load(tmp_path / "p", config=overrides).get_pipe("transformer_ner")
    assert (changed.cfg["abbreviations"], changed.cfg["threshold"]) == ("consistent", 0.25)
    assert changed.labels == ("CHEM", "DIS")
    plain = spacy.load(tmp_path / "p").get_pipe("transformer_ner")
    assert (plain.cfg["abbreviations"], plain.cfg["threshold"]) == ("none", 0.0)
    restored = make_nlp("tok2vec", abbreviations="propagate").from_bytes(nlp.to_bytes()).get_pipe("transformer_ner")
    assert restored.cfg["abbreviations"] == "propagate" and restored.labels == ("CHEM", "DIS")


def test_short_form_uses_are_whole_tokens_as_written():
    doc = NLP("Blood urea nitrogen (BUN) rose. BUNs and bun differ from BUN.")
    (abbr, uses), = short_form_uses(doc)
    assert (abbr.short, abbr.long) == ("BUN", "Blood urea nitrogen")
    assert [doc[s:e].text for s, e in uses] == ["BUN", "BUN"]
    assert uses[0] == _tokens(doc, "BUN") and uses[1] == _tokens(doc, "BUN", 2)


def test_short_form_not_whole_tokens_where_defined_has_no_uses():
    words = ["Chronic", "kidney", "disease", "(", "CKD", ")x", "and", "CKD", "."]
    doc = spacy.tokens.Doc(NLP.vocab, words=words, spaces=[True, True, True, False, False, True, True, False, False])
    assert doc.text == "Chronic kidney disease (CKD)x and CKD."
    assert [(a.short, uses) for a, uses in short_form_uses(doc)] == [("CKD", [(4, 5), (7, 8)])]
    split = spacy.tokens.Doc(NLP.vocab, words=["Chronic", "kidney", "disease", "(", "CK", "D)", "and", "CKD"],
                             spaces=[True, True, True, False, False, True, True, False])
    assert [(a.short, uses) for a, uses in short_form_uses(split)] == [("CKD", [])]


def test_weak_labels_and_predictions_find_the_same_uses():
    from spacy_llm_ner.kb.records import EntityRecord
    from spacy_llm_ner.training.weak import WeakLabeler

    doc = NLP(TEXT)
    records = [EntityRecord("C1", "puromycin aminonucleoside", [], type="CHEM"),
               EntityRecord("D1", "nephrotic syndrome", [], type="DIS")]
    weak = WeakLabeler(records, abbreviations=True)(NLP.make_doc(TEXT))
    long_forms = [((*_tokens(doc, "Puromycin aminonucleoside"), 0), 1.0), ((*_tokens(doc, "nephrotic syndrome"), 1), 1.0)]
    predicted = propagate_abbreviations(doc, long_forms)
    assert [(e.start, e.end, e.label_) for e in weak.ents] == [(s, e, ("CHEM", "DIS")[k]) for (s, e, k), _ in predicted]
