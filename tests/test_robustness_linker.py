"""Hostile input for the whole pipeline: transformer -> transformer_ner ->
transformer_entity_linker (tiny random BERT, tiny KB). Nothing may raise,
spans stay valid, every score is finite in [0, 1], nlp.pipe equals nlp(),
a long document is tagged and linked across the backbone's window edges,
and entities or links already on a doc are respected or overwritten as
configured."""
import math
from typing import List, Tuple

import pytest
import spacy
from hypothesis import HealthCheck, given, settings, strategies as st
from spacy.tokens import Doc, Span
from spacy.training import Example
from thinc.api import fix_random_seed

import util
from util import reference
from spacy_llm_ner.kb import EntityRecord, LinkerKB

NER, LINKER = "transformer_ner", "transformer_entity_linker"

RECORDS = [
    EntityRecord("Q_CIS", "cisplatin", description="a platinum drug against cancer"),
    EntityRecord("Q_CAF", "caffeine", description="a stimulant found in coffee"),
    EntityRecord("Q_LI", "lithium", aliases=["lithium carbonate"], description="a mood stabiliser"),
    EntityRecord("Q_RF", "renal failure", aliases=["kidney failure"], description="the kidneys stop working"),
    EntityRecord("Q_HA", "headache", description="pain in the head"),
]
# (text, [(start, end, label, kb_id)])
DATA = [
    ("We gave cisplatin to patients with renal failure.", [(8, 17, "CHEM", "Q_CIS"), (35, 48, "DIS", "Q_RF")]),
    ("No effect of caffeine was seen.", [(13, 21, "CHEM", "Q_CAF")]),
    ("Chronic kidney disease worsened after lithium therapy.", [(0, 22, "DIS", "NIL"), (38, 45, "CHEM", "Q_LI")]),
    ("Aspirin causes headache in mice.", [(0, 7, "CHEM", "NIL"), (15, 23, "DIS", "Q_HA")]),
]
HOSTILE = [
    "",
    " ",
    "\n\n\t ",
    "a" * 5000,
    "cisplatin" * 300,
    "😀🔥 cisplatin 😀 causes 头痛 and مرض الكلى",
    "e\u0301\u0301\u0301 cisplatin\u200b\u200d renal failure",
    "\x00\x01\x1f control \x7f characters caffeine",
    "\u202eRTL override\u202c lithium \u2066isolate\u2069",
    "cisplatin " * 300,
]


# Tiny models are faster on one torch thread (and the machine is shared).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build(model_dir: str, **linker_cfg) -> spacy.Language:
    nlp = util.make_nlp("transformer", model_dir=model_dir)
    nlp.add_pipe(LINKER, config=linker_cfg)
    nlp.get_pipe(LINKER).set_kb(LinkerKB.from_records(nlp.vocab, RECORDS))
    return nlp


def fit(nlp, *, steps: int = 100, learn_rate: float = 0.005) -> List[Example]:
    egs = [Example(nlp.make_doc(text), reference(nlp, text, ents)) for text, ents in DATA]
    optimizer = nlp.initialize(lambda: egs)
    optimizer.learn_rate = learn_rate
    for _ in range(steps):
        nlp.update(egs, sgd=optimizer, losses={})
    return egs


@pytest.fixture(scope="module")
def nlp(tiny_bert_dir):
    fix_random_seed(0)
    pipeline = build(tiny_bert_dir)
    fit(pipeline)
    return pipeline


def links(doc) -> List[Tuple[int, int, str, str]]:
    return [(e.start_char, e.end_char, e.label_, e.kb_id_) for e in doc.ents]


def check(doc) -> None:
    """Valid, ordered entity spans; every NER and linker score finite in [0, 1]."""
    previous_end = 0
    for ent in doc.ents:
        assert 0 <= ent.start < ent.end <= len(doc) and ent.start >= previous_end
        previous_end = ent.end
    ner_group = doc.spans[NER]
    assert len(ner_group) == len(ner_group.attrs["scores"])
    for score in ner_group.attrs["scores"]:
        assert math.isfinite(score) and 0.0 <= score <= 1.0
    group = doc.spans[LINKER]
    assert len(group) == len(group.attrs["scores"]) == len(group.attrs["candidates"])
    for span, score, nil, candidates in zip(group, group.attrs["scores"], group.attrs["nil_scores"], group.attrs["candidates"]):
        assert span.kb_id_, span
        for p in (score, nil, *(p for _, p in candidates)):
            assert math.isfinite(p) and 0.0 <= p <= 1.0, (span, score, candidates)
        assert sum(p for _, p in candidates) + nil <= 1.0 + 1e-6
        assert len({e for e, _ in candidates}) == len(candidates)


def test_trained_pipeline_links(nlp):
    """The fixture must have learnt the toy data, or the other tests prove little."""
    for text, gold in DATA:
        assert links(nlp(text)) == sorted((s, e, label, k) for s, e, label, k in gold), text


def test_hostile_texts(nlp):
    # An empty doc first in a batch with entities after it once broke the
    # linker's pooling (it took the width from the first doc's vectors).
    assert links(list(nlp.pipe(["", DATA[0][0]]))[1]) == links(nlp(DATA[0][0]))
    docs = list(nlp.pipe(HOSTILE, batch_size=3))
    for text, doc in zip(HOSTILE, docs):
        check(doc)
        single = nlp(text)
        assert links(doc) == links(single)
        assert doc.spans[LINKER].attrs["scores"] == pytest.approx(single.spans[LINKER].attrs["scores"], abs=1e-5)


@st.composite
def _docs_with_ents(draw):
    """Random Unicode text; some docs carry entities (random label and, at
    times, a kb id) on random tokens, as an entity_ruler or a user would."""
    text = draw(st.text(max_size=120))
    n_tokens = len(spacy.blank("en").make_doc(text))
    spans = []
    if n_tokens and draw(st.booleans()):
        cuts = sorted(draw(st.sets(st.integers(0, n_tokens), min_size=2, max_size=6)))
        for start, end in zip(cuts[::2], cuts[1::2]):
            kb_id = draw(st.sampled_from(["", "", "Q_CIS", "NOT_IN_KB"]))
            spans.append((start, end, draw(st.sampled_from(["CHEM", "DIS", "OTHER"])), kb_id))
    return text, spans


def _make(nlp, text: str, spans) -> Doc:
    doc = nlp.make_doc(text)
    doc.set_ents([Span(doc, s, e, label=label, kb_id=kb_id) for s, e, label, kb_id in spans])
    return doc


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(_docs_with_ents(), min_size=1, max_size=4))
def test_random_unicode_with_and_without_entities(nlp, items):
    """Both components on random Unicode: no exception, valid spans, scores
    in [0, 1], pipe == call; pre-set entities are kept (ents_mode respect)
    and linked like the NER's own."""
    piped = list(nlp.pipe([_make(nlp, text, spans) for text, spans in items], batch_size=2))
    for (text, spans), doc in zip(items, piped):
        check(doc)
        single = nlp(_make(nlp, text, spans))
        assert links(doc) == links(single)
        assert doc.spans[LINKER].attrs["scores"] == pytest.approx(single.spans[LINKER].attrs["scores"], abs=1e-5)
        kept = {(e.start, e.end, e.label_) for e in doc.ents}
        assert {(s, e, label) for s, e, label, _ in spans} <= kept


# -- a long document ------------------------------------------------------------

N_LONG = 20_000  # tokens; enough for ~1,700 backbone windows


def test_long_document_across_window_edges(nlp):
    text, gold = util.long_document(nlp, DATA, N_LONG)
    doc = nlp(text)
    assert len(doc) >= N_LONG
    check(doc)
    found = {(e.start_char, e.end_char, e.label_): e.kb_id_ for e in doc.ents}
    hits = [g for g in gold if g[:3] in found]
    straddling = [g for g in gold if g[-1]]
    assert len(straddling) >= 50
    assert len(hits) >= 0.95 * len(gold)
    assert sum(g[:3] in found for g in straddling) >= 0.95 * len(straddling)
    assert sum(found[g[:3]] == g[3] for g in hits) >= 0.95 * len(hits)
    # The same doc in a batch with short ones gives the same result.
    piped = list(nlp.pipe(["cisplatin", text, ""], batch_size=3))[1]
    assert links(piped) == links(doc)


# -- docs that already carry entities or links ------------------------------------


def clone(nlp, **cfgs) -> spacy.Language:
    """A copy of the trained pipeline with component settings changed."""
    other = spacy.blank("en").from_config(nlp.config).from_bytes(nlp.to_bytes())
    for name, cfg in cfgs.items():
        other.get_pipe(name).cfg.update(cfg)
    return other


CAFFEINE = "No effect of caffeine was seen."


def _preset(nlp, label: str, kb_id: str = "") -> Doc:
    doc = nlp.make_doc(CAFFEINE)
    doc.ents = [doc.char_span(13, 21, label=label, kb_id=kb_id)]
    return doc


@pytest.mark.parametrize("ents_mode", ["respect", "overwrite"])
@pytest.mark.parametrize("overwrite", [True, False])
def test_preset_entities_and_links(nlp, ents_mode, overwrite):
    """ents_mode decides whether the NER keeps a pre-set entity; the linker's
    overwrite whether it replaces a pre-set kb_id. A kept link's kb_score is
    the probability the linker gives that id, not its own choice's."""
    other = clone(nlp, **{NER: {"ents_mode": ents_mode}, LINKER: {"overwrite": overwrite}})
    label = "PRESET" if ents_mode == "respect" else "CHEM"
    for preset_id in ["", "Q_LI", "NOT_IN_KB"]:
        doc = other(_preset(other, "PRESET", preset_id))
        check(doc)
        (ent,) = doc.ents
        assert (ent.text, ent.label_) == ("caffeine", label)
        keep = preset_id and ents_mode == "respect" and not overwrite
        assert ent.kb_id_ == (preset_id if keep else "Q_CAF")
        probabilities = dict(ent._.kb_candidates)
        assert ent._.kb_score == pytest.approx(probabilities.get(ent.kb_id_, 0.0))
        assert doc.spans[LINKER][0].kb_id_ == ent.kb_id_


# -- pipelines: save and load, processes, seeds ------------------------------------------

TEXTS = [text for text, _ in DATA] + HOSTILE[:3] + ["We gave lithium carbonate and caffeine to patients with kidney failure."]


def _outputs_of(docs) -> list:
    """Per doc: links, NER scores, link scores and candidates."""
    return [
        (links(doc), doc.spans[NER].attrs["scores"], doc.spans[LINKER].attrs["scores"], doc.spans[LINKER].attrs["candidates"])
        for doc in docs
    ]


def outputs(nlp, texts=TEXTS) -> list:
    return _outputs_of(nlp.pipe(texts))


def assert_same(a, b) -> None:
    assert len(a) == len(b)
    for (links_a, ner_a, el_a, cands_a), (links_b, ner_b, el_b, cands_b) in zip(a, b):
        assert links_a == links_b
        assert ner_a == pytest.approx(ner_b, abs=1e-5) and el_a == pytest.approx(el_b, abs=1e-5)
        assert [[e for e, _ in c] for c in cands_a] == [[e for e, _ in c] for c in cands_b]


def test_round_trips_bytes_and_disk(nlp, tmp_path):
    """Every component (transformer, NER, linker with its KB) survives
    to_bytes/from_bytes and to_disk/spacy.load, as a pipeline and one
    component at a time."""
    expected = outputs(nlp)
    assert_same(outputs(clone(nlp)), expected)
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    assert_same(outputs(loaded), expected)
    assert list(loaded.get_pipe(LINKER).kb.entity_ids) == [r.id for r in RECORDS]
    # Component by component into a freshly built pipeline.
    fresh = spacy.blank("en").from_config(nlp.config)
    for name, proc in nlp.pipeline:
        fresh.get_pipe(name).from_bytes(proc.to_bytes())
    assert_same(outputs(fresh), expected)
    fresh = spacy.blank("en").from_config(nlp.config)
    for name, proc in nlp.pipeline:
        proc.to_disk(tmp_path / name)
        fresh.get_pipe(name).from_disk(tmp_path / name)
    assert_same(outputs(fresh), expected)
    kb = nlp.get_pipe(LINKER).kb
    for again in (LinkerKB(nlp.vocab).from_bytes(kb.to_bytes()), LinkerKB.load(tmp_path / LINKER / "kb", nlp.vocab)):
        assert [again.entity(e) for e in again.entity_ids] == [kb.entity(e) for e in kb.entity_ids]


@pytest.mark.parametrize("case", ["missing-folder", "broken-meta", "missing-segment", "garbage-trie", "truncated-array"])
def test_loading_a_pipeline_with_a_damaged_kb(nlp, tmp_path, case):
    from test_robustness_kb import _damage

    nlp.to_disk(tmp_path / "model")
    kb_dir = tmp_path / "model" / LINKER / "kb"
    _damage(kb_dir, case)
    with pytest.raises(ValueError) as info:
        spacy.load(tmp_path / "model")
    message = str(info.value)
    assert str(kb_dir) in message and LINKER in message
    assert len(message) < 1000  # one clear message, not a dump


def test_two_processes_equal_one(nlp):
    texts = TEXTS[:4] + ["cisplatin " * 40]
    assert_same(_outputs_of(nlp.pipe(texts, n_process=2, batch_size=2)), outputs(nlp, texts))


def test_same_seed_same_pipeline(tiny_bert_dir):
    """Training twice from the same seed gives identical outputs (NER and
    linker scores equal, not only close)."""
    runs = []
    for _ in range(2):
        fix_random_seed(7)
        pipeline = build(tiny_bert_dir)
        fit(pipeline, steps=15)
        runs.append(outputs(pipeline))
    assert runs[0] == runs[1]


# -- configs: clear errors at build or initialize time ------------------------------------


def _initialize(nlp, data=DATA):
    egs = [Example(nlp.make_doc(text), reference(nlp, text, ents)) for text, ents in data]
    return nlp.initialize(lambda: egs)


def test_unknown_decoder_in_a_config(tiny_bert_dir):
    config = util.make_nlp("transformer", model_dir=tiny_bert_dir).config
    config["components"][NER]["decoder"] = "viterbi"
    with pytest.raises(ValueError, match=r"\[transformer_ner\] Unknown decoder 'viterbi': expected one of 'crf', 'softmax'"):
        spacy.util.load_model_from_config(config, auto_fill=True, validate=True)


def test_ner_labels_that_disagree_with_the_data(tiny_bert_dir):
    nlp = build(tiny_bert_dir)
    nlp.config["initialize"]["components"][NER] = {"labels": ["CHEM"]}
    with pytest.raises(ValueError, match=r"labels \['DIS'\] that are not in the configured labels .*"
                       r"Add them to \[initialize.components.transformer_ner\] labels"):
        _initialize(nlp)


def test_linker_labels_that_no_gold_entity_has(tiny_bert_dir):
    nlp = build(tiny_bert_dir, labels=["Disease"])
    with pytest.raises(ValueError, match=r"'transformer_entity_linker' links the entity labels \['Disease'\], but no "
                       r"gold entity .* has one of them \(they have \['CHEM', 'DIS'\]\)\. Fix `labels` in "
                       r"\[components.transformer_entity_linker\]"):
        _initialize(nlp)


def test_linker_without_a_kb(tiny_bert_dir):
    nlp = util.make_nlp("transformer", model_dir=tiny_bert_dir)
    nlp.add_pipe(LINKER)
    with pytest.raises(ValueError, match=r"'transformer_entity_linker' has no knowledge base: set "
                       r"\[initialize.components.transformer_entity_linker.kb_loader\]"):
        _initialize(nlp)


@pytest.mark.parametrize("source", ["transformer_ner", "entity_ruler"])
def test_linker_before_the_entity_source(tiny_bert_dir, source):
    nlp = util.make_nlp("transformer", model_dir=tiny_bert_dir)
    if source == "entity_ruler":
        nlp.remove_pipe(NER)
        # A token pattern: phrase patterns would run the uninitialized transformer.
        nlp.add_pipe("entity_ruler").add_patterns([{"label": "CHEM", "pattern": [{"LOWER": "cisplatin"}]}])
    nlp.add_pipe(LINKER, before=source)
    nlp.get_pipe(LINKER).set_kb(LinkerKB.from_records(nlp.vocab, RECORDS))
    with pytest.raises(ValueError, match=rf"'transformer_entity_linker' runs before '{source}', which sets doc.ents.*"
                       rf"nlp.add_pipe\('transformer_entity_linker', after='{source}'\)"):
        _initialize(nlp)


def test_linker_without_an_entity_source_warns(tiny_bert_dir):
    """Linking entities the caller sets is supported, so this is a warning
    that says what to add, not an error."""
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", source=util.make_nlp("transformer", model_dir=tiny_bert_dir))
    nlp.add_pipe(LINKER)
    nlp.get_pipe(LINKER).set_kb(LinkerKB.from_records(nlp.vocab, RECORDS))
    with pytest.warns(UserWarning, match="No component before 'transformer_entity_linker' sets doc.ents.*transformer_ner"):
        _initialize(nlp)
    doc = nlp(_preset(nlp, "CHEM"))
    assert [e.text for e in doc.ents] == ["caffeine"] and doc.ents[0].kb_id_
