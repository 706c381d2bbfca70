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

from spacy_llm_ner.kb.abbreviations import (
    find_abbreviation_definitions,
    short_form_definitions,
    short_form_uses,
)
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
    words=st.lists(
        st.sampled_from(["Aspirin", "acid", "(", ")", "AA", "PAN", "of", ".", "X", "toxic", "(PAN)", "'s", '"', "Pan"]),
        max_size=40,
    ),
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


# General-domain text (issue #25): detokenised news with spaces inside the
# parentheses, entities that start before the long form or end inside it,
# possessives, nested parentheses and short forms defined twice.
NEWS = ("ORG", "LOC")
BUMIKA = "Shares of PT Bumi Karya Nusantara ( Bumika ) rose . Analysts said Bumika would expand ."
NHDA = "The ruling Northern Harbour Development Authority 's ( NHDA ) chairman said the NHDA will meet ."


def _span(doc, text, label, score, nth=0):
    return ((*_tokens(doc, text, nth), label), score)


def _news(doc, spans):
    return [(doc[s:e].text, NEWS[label], score) for (s, e, label), score in spans]


def test_detector_reads_spaced_parentheses_and_keeps_the_possessive_in_the_long_form():
    assert [(a.short, a.long) for a in find_abbreviation_definitions(BUMIKA)] == [("Bumika", "Bumi Karya Nusantara")]
    (abbr,) = find_abbreviation_definitions(NHDA)
    assert (abbr.short, abbr.long) == ("NHDA", "Northern Harbour Development Authority 's")
    assert NHDA[abbr.long_start : abbr.long_start + len(abbr.long)] == abbr.long
    assert NHDA[abbr.start : abbr.start + len(abbr.short)] == "NHDA"


@pytest.mark.parametrize("consistent", [False, True])
def test_entity_starting_before_the_long_form_is_the_source(consistent):
    doc = NLP(BUMIKA)  # long form "Bumi Karya Nusantara", entity "PT Bumi Karya Nusantara"
    spans = [_span(doc, "PT Bumi Karya Nusantara", 0, 0.8), _span(doc, "Bumika", 1, 0.3, nth=1)]
    out = propagate_abbreviations(doc, spans, remove_unsupported=consistent)
    assert _news(doc, out) == [("PT Bumi Karya Nusantara", "ORG", 0.8), ("Bumika", "ORG", 0.8), ("Bumika", "ORG", 0.8)]


@pytest.mark.parametrize(
    "text, entity, short",
    [
        (NHDA, "Northern Harbour Development Authority", "NHDA"),  # possessive token
        (NHDA.replace(" 's (", "'s ("), "Northern Harbour Development Authority", "NHDA"),  # attached
        (NHDA.replace(" 's (", " ’s ("), "Northern Harbour Development Authority", "NHDA"),  # curly
        ('He joined the " Blue River Alliance " ( BRA ) . BRA won .', "Blue River Alliance", "BRA"),  # quote
        ("The Lakeside Mining Group -- ( LMG ) said LMG grew .", "Lakeside Mining Group", "LMG"),  # dash
    ],
)
def test_trailing_possessive_quote_or_punctuation_is_skipped(text, entity, short):
    doc = NLP(text)
    ((_, long), ) = [(a.short, a.long) for a in find_abbreviation_definitions(text)]
    assert long.startswith(entity) and long != entity  # the long form ends after the entity
    spans = [_span(doc, entity, 0, 0.9), _span(doc, short, 1, 0.4, nth=1)]
    out = propagate_abbreviations(doc, spans, remove_unsupported=True)
    assert _news(doc, out) == [(entity, "ORG", 0.9), (short, "ORG", 0.9), (short, "ORG", 0.9)]


@pytest.mark.parametrize("entity", ["Ministry of Health", "Health", "new Ministry"])
def test_entity_overlapping_the_long_form_without_its_last_content_word_leaves_uses_alone(entity):
    text = "The new Ministry of Health Services ( MHS ) opened , and MHS staff said so ."
    doc = NLP(text)  # long form "Ministry of Health Services"
    spans = sorted([_span(doc, entity, 0, 0.7), _span(doc, "MHS", 1, 0.4, nth=1)])
    for consistent in (False, True):
        assert propagate_abbreviations(doc, spans, remove_unsupported=consistent) == spans


def test_entity_covering_the_last_content_word_from_inside_the_long_form_is_the_source():
    doc = NLP("The new Ministry of Health Services ( MHS ) opened , and MHS staff said so .")
    out = propagate_abbreviations(doc, [_span(doc, "Health Services", 1, 0.6)])
    assert _news(doc, out) == [("Health Services", "LOC", 0.6), ("MHS", "LOC", 0.6), ("MHS", "LOC", 0.6)]


def test_consistent_mode_drops_only_when_no_entity_overlaps_the_long_form():
    text = "In Oslo the new trade agreement ( NTA ) took effect . The NTA cut tariffs ."
    doc = NLP(text)
    oslo = _span(doc, "Oslo", 1, 0.9)  # an entity elsewhere is no support
    spans = [oslo, _span(doc, "NTA", 0, 0.5), _span(doc, "NTA", 0, 0.4, nth=1)]
    assert propagate_abbreviations(doc, spans) == spans
    assert propagate_abbreviations(doc, spans, remove_unsupported=True) == [oslo]
    # Any overlap with the long form ("new trade agreement") is enough to keep them.
    with_agreement = sorted(spans + [_span(doc, "trade", 0, 0.2)])
    assert propagate_abbreviations(doc, with_agreement, remove_unsupported=True) == with_agreement


def test_blocked_tokens_in_the_long_form_count_as_an_entity():
    doc = NLP("In Oslo the new trade agreement ( NTA ) took effect . The NTA cut tariffs .")
    uses = [_span(doc, "NTA", 0, 0.5), _span(doc, "NTA", 0, 0.4, nth=1)]
    blocked = set(range(*_tokens(doc, "trade agreement")))
    assert propagate_abbreviations(doc, uses, remove_unsupported=True, blocked=blocked) == uses


@pytest.mark.parametrize("attached", [False, True])
def test_nested_parentheses(attached):
    text = "Rebels ( loyal to the Free Highland Army ( FHA ) ) attacked . The FHA denied it ."
    if attached:
        text = text.replace("( ", "(").replace(" )", ")")
    doc = NLP(text)
    assert [(a.short, a.long) for a in find_abbreviation_definitions(text)] == [("FHA", "Free Highland Army")]
    out = propagate_abbreviations(doc, [_span(doc, "Free Highland Army", 0, 0.8)], remove_unsupported=True)
    assert _news(doc, out) == [("Free Highland Army", "ORG", 0.8), ("FHA", "ORG", 0.8), ("FHA", "ORG", 0.8)]
    unsupported = [_span(doc, "Rebels", 1, 0.3), _span(doc, "FHA", 0, 0.5, nth=1)]
    assert propagate_abbreviations(doc, unsupported, remove_unsupported=True) == unsupported[:1]


def test_definition_inside_a_longer_entity_is_left_and_other_uses_follow():
    doc = NLP(BUMIKA)
    whole = _span(doc, "PT Bumi Karya Nusantara ( Bumika )", 0, 0.8)
    out = propagate_abbreviations(doc, [whole], remove_unsupported=True)
    assert _news(doc, out) == [("PT Bumi Karya Nusantara ( Bumika )", "ORG", 0.8), ("Bumika", "ORG", 0.8)]


TWICE = (
    "The FHA was blamed . The Free Highland Army ( FHA ) denied it . "
    "Later the Federal Housing Agency ( FHA ) said FHA loans rose ."
)


def test_short_form_defined_twice_uses_follow_the_nearest_definition_before_them():
    doc = NLP(TWICE)
    definitions = short_form_definitions(doc)
    assert [(a.long, [doc[s:e].text for s, e in uses]) for a, uses in definitions] == [
        ("Free Highland Army", ["FHA", "FHA"]), ("Federal Housing Agency", ["FHA", "FHA"]),
    ]
    first, second = (uses for _, uses in definitions)
    assert first == [_tokens(doc, "FHA", 0), _tokens(doc, "FHA", 1)]  # the use before any definition
    assert second == [_tokens(doc, "FHA", 2), _tokens(doc, "FHA", 3)]
    (abbr, every), = short_form_uses(doc)  # the first definition, with every use
    assert abbr == definitions[0][0] and every == first + second
    army, agency = _span(doc, "Free Highland Army", 0, 0.8), _span(doc, "Federal Housing Agency", 1, 0.6)
    out = propagate_abbreviations(doc, [army, agency])
    assert _news(doc, out) == [
        ("FHA", "ORG", 0.8), ("Free Highland Army", "ORG", 0.8), ("FHA", "ORG", 0.8),
        ("Federal Housing Agency", "LOC", 0.6), ("FHA", "LOC", 0.6), ("FHA", "LOC", 0.6),
    ]
    # The second long form is no entity: only its own uses are dropped.
    late = _span(doc, "FHA", 1, 0.3, nth=3)
    out = propagate_abbreviations(doc, [army, late], remove_unsupported=True)
    assert _news(doc, out) == [("FHA", "ORG", 0.8), ("Free Highland Army", "ORG", 0.8), ("FHA", "ORG", 0.8)]
    assert propagate_abbreviations(doc, [army, late]) == sorted(
        [army, late] + [_span(doc, "FHA", 0, 0.8, nth=n) for n in (0, 1)]
    )


def test_short_form_defined_twice_with_the_same_long_form_shares_the_evidence():
    text = (
        "The Free Highland Army ( FHA ) attacked . The FHA denied it . "
        "A spokesman for the free highland army 's ( FHA ) office said FHA troops left ."
    )
    doc = NLP(text)
    assert len(short_form_definitions(doc)) == 2
    second_long = _span(doc, "highland army", 0, 0.7)
    late = _span(doc, "FHA", 1, 0.3, nth=3)
    # Only the second long form is predicted: all four uses follow it.
    out = propagate_abbreviations(doc, [second_long, late], remove_unsupported=True)
    assert _news(doc, out) == [
        ("FHA", "ORG", 0.7), ("FHA", "ORG", 0.7), ("highland army", "ORG", 0.7), ("FHA", "ORG", 0.7),
        ("FHA", "ORG", 0.7),
    ]
    # Only the first is predicted: the second is no evidence against it.
    first_long = _span(doc, "Free Highland Army", 0, 0.9)
    out = propagate_abbreviations(doc, [first_long, late], remove_unsupported=True)
    assert [score for _, score in out] == [0.9] * 5 and {label for (_, _, label), _ in out} == {0}
    # One overlaps without its last word, the other is no entity: left alone.
    partial = _span(doc, "Free", 1, 0.2)
    assert propagate_abbreviations(doc, [partial, late], remove_unsupported=True) == [partial, late]


def test_consistent_pipeline_keeps_short_forms_of_entities_with_other_boundaries():
    nlp = make_nlp("tok2vec", abbreviations="consistent")
    train(nlp, TRAIN_DATA, steps=1)
    ner = nlp.get_pipe("transformer_ner")
    chem, dis = ner.labels.index("CHEM"), ner.labels.index("DIS")
    docs = [nlp.make_doc(BUMIKA), nlp.make_doc(NHDA), nlp.make_doc("The control group ( CG ) and the CG rats .")]
    decoded = []
    for doc, (entity, use, label) in zip(
        docs, [("PT Bumi Karya Nusantara", "Bumika", chem), ("Northern Harbour Development Authority", "NHDA", dis),
               ("rats", "CG", chem)]
    ):
        rows = [(*_tokens(doc, entity), label), (*_tokens(doc, use, 1), label)]
        decoded.append((numpy.array(sorted(rows), dtype="i"), numpy.array([0.9, 0.5])))
    ner.set_annotations(docs, decoded)
    assert [[(e.text, e.label_) for e in doc.ents] for doc in docs] == [
        [("PT Bumi Karya Nusantara", "CHEM"), ("Bumika", "CHEM"), ("Bumika", "CHEM")],
        [("Northern Harbour Development Authority", "DIS"), ("NHDA", "DIS"), ("NHDA", "DIS")],
        [("rats", "CHEM")],
    ]
    assert docs[0].spans["transformer_ner"].attrs["scores"] == pytest.approx([0.9, 0.9, 0.9])
