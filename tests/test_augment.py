"""Entity-swap, noise and combined augmenters: annotation stays on the right
text, seeds reproduce, and the augmenters work from a training config."""
from typing import List, Tuple

import numpy
import pytest
import spacy
from hypothesis import given, settings, strategies as st
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from spacy.util import load_model_from_config, registry, resolve_dot_names
from thinc.api import Config, fix_random_seed

from conftest import TRAIN_DATA
from util import make_nlp
from spacy_llm_ner.kb import EntityRecord, LinkerKB
from spacy_llm_ner.training import SOFT_TAGS_KEY, EntitySwapAugmenter, NoiseAugmenter, set_soft_tags

NLP = spacy.blank("en")
KB_RECORDS = [
    EntityRecord("C1", "Aspirin", ["acetylsalicylic acid", "ASA"], type="CHEM"),
    EntityRecord("C2", "Cisplatin", ["cis-diamminedichloroplatinum"], type="CHEM"),
    EntityRecord("D1", "Kidney Failure", ["renal failure", "renal insufficiency"], type="DIS"),
    EntityRecord("D2", "Headache", ["cephalalgia"], type="DIS"),
]


def linked_example(text: str, ents: List[Tuple[int, int, str, str]]) -> Example:
    """An example whose reference has entities with kb_ids (as a .spacy
    corpus stores them) and a predicted doc from the tokenizer."""
    ref = NLP.make_doc(text)
    ref.set_ents([ref.char_span(s, e, label=label, kb_id=kb_id) for s, e, label, kb_id in ents], default="outside")
    return Example(NLP.make_doc(text), ref)


def outside_chunks(doc: Doc) -> List[str]:
    """The text between (and around) the entities."""
    chunks, position = [], 0
    for ent in doc.ents:
        chunks.append(doc.text[position : ent.start_char])
        position = ent.end_char
    return chunks + [doc.text[position:]]


def ent_tuples(doc: Doc) -> List[Tuple[str, str, str]]:
    return [(e.text, e.label_, e.kb_id_) for e in doc.ents]


EXAMPLE_TEXT = "Aspirin  causes headache in mice; aspirin (again)\nworsened renal failure."
EXAMPLE_ENTS = [(0, 7, "CHEM", "C1"), (16, 24, "DIS", "D2"), (34, 41, "CHEM", "C1"), (59, 72, "DIS", "D1")]


def kb_loader_counting(calls: List[int]):
    def load(vocab):
        calls.append(1)
        return LinkerKB.from_records(vocab, [EntityRecord(**vars(r)) for r in KB_RECORDS])

    return load


# -- entity swap --------------------------------------------------------------


def test_swap_from_names_keeps_text_offsets_labels_and_whitespace():
    eg = linked_example(EXAMPLE_TEXT, EXAMPLE_ENTS)
    aug = EntitySwapAugmenter(level=1.0, names={"CHEM": ["lithium carbonate"], "DIS": ["chronic kidney disease"]})
    original, swapped = list(aug(NLP, eg))
    assert original is eg
    ref = swapped.reference
    assert swapped.predicted.text == ref.text
    # Spaces, the double space and the newline outside the entities are untouched.
    assert outside_chunks(ref) == outside_chunks(eg.reference)
    assert [e.label_ for e in ref.ents] == ["CHEM", "DIS", "CHEM", "DIS"]
    # A name from `names` has no entity id; a mention seen in the data keeps its own.
    pool = {"lithium carbonate": "", "chronic kidney disease": "", "headache": "D2", "renal failure": "D1"}
    for new, old in zip(ref.ents, eg.reference.ents):
        assert ref.text[new.start_char : new.end_char] == new.text
        assert new.text in pool and new.kb_id_ == pool[new.text]
        assert new.text.lower() != old.text.lower()
    # Equal mentions get the same replacement within a doc.
    assert ref.ents[0].text == ref.ents[2].text == "lithium carbonate"
    # The predicted doc (the tokenizer's) aligns to the new reference.
    aligned = swapped.get_aligned_spans_y2x(ref.ents)
    assert [(s.text, s.label_) for s in aligned] == [(e.text, e.label_) for e in ref.ents]


def test_swap_from_kb_uses_entity_ids_and_loads_once():
    calls: List[int] = []
    aug = EntitySwapAugmenter(level=1.0, kb_loader=kb_loader_counting(calls), seed=3)
    for _ in range(5):
        _, swapped = list(aug(NLP, linked_example(EXAMPLE_TEXT, EXAMPLE_ENTS)))
        for ent in swapped.reference.ents:
            record = next(r for r in KB_RECORDS if r.id == ent.kb_id_)
            assert record.type == ent.label_
            assert ent.text in record.all_names()
        assert outside_chunks(swapped.reference) == outside_chunks(linked_example(EXAMPLE_TEXT, EXAMPLE_ENTS).reference)
    assert calls == [1]


def test_swap_falls_back_to_data_for_labels_the_kb_lacks():
    aug = EntitySwapAugmenter(level=1.0, kb_loader=kb_loader_counting([]), seed=0)
    list(aug(NLP, linked_example("Mice were treated.", [(0, 4, "SPECIES", "")])))
    _, swapped = list(aug(NLP, linked_example("Rats were treated.", [(0, 4, "SPECIES", "")])))
    assert ent_tuples(swapped.reference) == [("Mice", "SPECIES", "")]
    assert swapped.reference.text == "Mice were treated."


def test_swap_without_other_names_yields_only_the_original():
    eg = linked_example("Aspirin helps.", [(0, 7, "CHEM", "C1")])
    assert list(EntitySwapAugmenter(level=1.0)(NLP, eg)) == [eg]


def test_swap_keeps_missing_annotation_span_groups_and_user_data():
    ref = NLP.make_doc("Aspirin causes headache in mice .")
    ref.set_ents([Span(ref, 0, 1, "CHEM", kb_id="C1")], missing=[ref[4:6]], default="outside")
    ref.spans["sc"] = [Span(ref, 0, 1, "CHEM", kb_id="C1"), Span(ref, 2, 3, "SYMPTOM"), Span(ref, 4, 5, "ANIMAL")]
    ref.cats = {"TOX": 1.0}
    ref.user_data["silver"] = True
    set_soft_tags(ref, ref, numpy.full((len(ref), 2), 0.5), ["O", "U-CHEM"])
    for i, token in enumerate(ref):
        token.tag_ = f"T{i}"
    eg = Example(NLP.make_doc(ref.text), ref)
    _, swapped = list(EntitySwapAugmenter(level=1.0, names={"CHEM": ["lithium carbonate"]})(NLP, eg))
    new = swapped.reference
    assert new.text == "lithium carbonate causes headache in mice ."
    assert [t.ent_iob_ for t in new] == ["B", "I", "O", "O", "O", "", ""]
    assert [t.tag_ for t in new] == ["", "", "T1", "T2", "T3", "T4", "T5"]
    assert [(s.text, s.label_, s.kb_id_) for s in new.spans["sc"]] == [
        ("lithium carbonate", "CHEM", ""), ("headache", "SYMPTOM", ""), ("mice", "ANIMAL", "")
    ]
    assert new.cats == {"TOX": 1.0} and new.user_data["silver"] is True
    # Teacher distributions are keyed by character offsets that moved.
    assert SOFT_TAGS_KEY not in new.user_data and SOFT_TAGS_KEY in ref.user_data


def test_swap_is_deterministic_per_seed_and_level_zero_is_identity():
    def run(seed: int, level: float) -> List[str]:
        aug = EntitySwapAugmenter(level=level, kb_loader=kb_loader_counting([]), seed=seed)
        out = []
        for text, ents in TRAIN_DATA * 3:
            eg = linked_example(text, [(s, e, label, "") for s, e, label in ents])
            out.extend(x.reference.text for x in aug(NLP, eg))
        return out

    assert run(1, 0.5) == run(1, 0.5)
    assert run(1, 0.5) != run(2, 0.5)
    assert run(1, 0.0) == [text for text, _ in TRAIN_DATA * 3]


def test_keep_original_false_replaces_the_example():
    eg = linked_example(EXAMPLE_TEXT, EXAMPLE_ENTS)
    out = list(EntitySwapAugmenter(level=1.0, kb_loader=kb_loader_counting([]), keep_original=False)(NLP, eg))
    assert len(out) == 1 and out[0] is not eg


# -- noise ------------------------------------------------------------------------


def test_noise_keeps_tokens_entities_and_kb_ids():
    eg = linked_example(EXAMPLE_TEXT, EXAMPLE_ENTS)
    aug = NoiseAugmenter(level=1.0, case=0.5, typo=0.5, drop=0.5, seed=0)
    original, noisy = list(aug(NLP, eg))
    old, new = original.reference, noisy.reference
    assert new.text != old.text and noisy.predicted.text == new.text
    assert len(new) == len(old)
    for a, b in zip(old, new):
        assert b.text and b.whitespace_ == a.whitespace_
        assert (b.ent_iob_, b.ent_type_, b.ent_kb_id_) == (a.ent_iob_, a.ent_type_, a.ent_kb_id_)
        if not any(c.isalpha() for c in a.text):
            assert b.text == a.text
    assert [(e.start, e.end, e.label_, e.kb_id_) for e in new.ents] == [
        (e.start, e.end, e.label_, e.kb_id_) for e in old.ents
    ]


def test_noise_outside_entities_only():
    eg = linked_example(EXAMPLE_TEXT, EXAMPLE_ENTS)
    _, noisy = list(NoiseAugmenter(level=1.0, case=1.0, typo=1.0, drop=1.0, inside_entities=False)(NLP, eg))
    assert ent_tuples(noisy.reference) == ent_tuples(eg.reference)
    changed = [a.text != b.text for a, b in zip(eg.reference, noisy.reference) if a.is_alpha and not a.ent_type]
    assert all(changed)


def test_noise_rates_zero_and_level_zero():
    eg = linked_example(EXAMPLE_TEXT, EXAMPLE_ENTS)
    _, same = list(NoiseAugmenter(level=1.0, case=0.0, typo=0.0, drop=0.0)(NLP, eg))
    assert same.reference.text == eg.reference.text
    assert list(NoiseAugmenter(level=0.0, case=1.0)(NLP, eg)) == [eg]
    with pytest.raises(ValueError, match="typo"):
        NoiseAugmenter(level=0.5, typo=2.0)


def test_noise_is_deterministic_per_seed():
    def run(seed: int) -> List[str]:
        aug = NoiseAugmenter(level=1.0, case=0.3, typo=0.3, drop=0.3, seed=seed)
        return [x.reference.text for _ in range(3) for x in aug(NLP, linked_example(EXAMPLE_TEXT, EXAMPLE_ENTS))]

    assert run(7) == run(7) and run(7) != run(8)


def test_noise_keeps_the_parse_and_gold_tokens():
    words = ["Aspirin", "causes", "headache", "."]
    ref = Doc(NLP.vocab, words=words, heads=[1, 1, 1, 1], deps=["nsubj", "ROOT", "dobj", "punct"])
    eg = Example(Doc(NLP.vocab, words=words), ref)  # gold_preproc style: unknown spaces
    _, noisy = list(NoiseAugmenter(level=1.0, case=1.0, typo=1.0)(NLP, eg))
    assert [t.dep_ for t in noisy.reference] == ["nsubj", "ROOT", "dobj", "punct"]
    assert [t.head.i for t in noisy.reference] == [1, 1, 1, 1]
    assert [t.text for t in noisy.predicted] == [t.text for t in noisy.reference]


# -- properties over random docs --------------------------------------------------

WORD = st.text(alphabet="abcXYZ-'.(1", min_size=1, max_size=6)


@st.composite
def random_examples(draw):
    words = draw(st.lists(WORD, min_size=1, max_size=12))
    spaces = draw(st.lists(st.booleans(), min_size=len(words), max_size=len(words)))
    ref = Doc(NLP.vocab, words=words, spaces=spaces)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(words)), max_size=6))))
    spans = [Span(ref, a, b, draw(st.sampled_from(["CHEM", "DIS"])), kb_id=draw(st.sampled_from(["", "C1", "D1"])))
             for a, b in zip(cuts[::2], cuts[1::2]) if b > a]
    ref.set_ents(spans, default="outside")
    return Example(NLP.make_doc(ref.text), ref)


@settings(max_examples=60, deadline=None)
@given(eg=random_examples(), seed=st.integers(0, 2**16))
def test_swap_property(eg, seed):
    names = {"CHEM": ["lithium carbonate", "a(b", "X"], "DIS": ["renal  failure", "-"]}
    aug = EntitySwapAugmenter(level=1.0, names=names, seed=seed)
    out = list(aug(NLP, eg))
    assert out[0] is eg
    if len(out) == 1:
        return
    ref = out[1].reference
    assert out[1].predicted.text == ref.text
    assert outside_chunks(ref) == outside_chunks(eg.reference)
    assert [e.label_ for e in ref.ents] == [e.label_ for e in eg.reference.ents]
    seen = {e.text: e.kb_id_ for e in eg.reference.ents}
    for new, old in zip(ref.ents, eg.reference.ents):
        assert ref.text[new.start_char : new.end_char] == new.text
        if new.text != old.text:
            options = {" ".join(n.split()): "" for n in names[new.label_]}
            assert new.text in options or new.text in seen
            assert new.kb_id_ == options.get(new.text, seen.get(new.text))
    out[1].get_aligned_ner()  # alignment of predicted and reference tokens holds


@settings(max_examples=60, deadline=None)
@given(eg=random_examples(), seed=st.integers(0, 2**16), inside=st.booleans())
def test_noise_property(eg, seed, inside):
    aug = NoiseAugmenter(level=1.0, case=0.5, typo=0.5, drop=0.5, inside_entities=inside, seed=seed)
    original, noisy = list(aug(NLP, eg))
    old, new = original.reference, noisy.reference
    assert noisy.predicted.text == new.text and len(new) == len(old)
    for a, b in zip(old, new):
        assert b.text and not any(c.isspace() for c in b.text) and b.whitespace_ == a.whitespace_
        assert (b.ent_iob_, b.ent_type_, b.ent_kb_id_) == (a.ent_iob_, a.ent_type_, a.ent_kb_id_)
        if a.ent_type and not inside:
            assert b.text == a.text
    noisy.get_aligned_ner()


# -- from a training config ---------------------------------------------------------

CORPUS_CFG = """
[paths]
train = null
kb = null

[corpora]

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${paths.train}

[corpora.train.augmenter]
@augmenters = "spacy_llm_ner.combined_augmenter.v1"

[corpora.train.augmenter.*.swap]
@augmenters = "spacy_llm_ner.entity_swap_augmenter.v1"
level = 1.0
seed = 1

[corpora.train.augmenter.*.swap.kb_loader]
@misc = "spacy_llm_ner.load_kb_jsonl.v1"
path = ${paths.kb}

[corpora.train.augmenter.*.noise]
@augmenters = "spacy_llm_ner.noise_augmenter.v1"
level = 1.0
case = 0.5

[corpora.train.augmenter.*.lower]
@augmenters = "spacy.lower_case.v1"
level = 0.5

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${paths.train}
"""


def test_augmenters_from_a_config_train_one_step(tmp_path):
    import srsly

    srsly.write_jsonl(tmp_path / "kb.jsonl", [
        {"id": r.id, "name": r.name, "aliases": r.aliases, "type": r.type} for r in KB_RECORDS
    ])
    docs = []
    for text, ents in TRAIN_DATA:
        doc = NLP.make_doc(text)
        doc.ents = [doc.char_span(s, e, label=label) for s, e, label in ents]
        docs.append(doc)
    DocBin(docs=docs).to_disk(tmp_path / "train.spacy")

    fix_random_seed(0)
    paths = {"paths.train": str(tmp_path / "train.spacy"), "paths.kb": str(tmp_path / "kb.jsonl")}
    config = make_nlp("tok2vec").config.merge(Config().from_str(CORPUS_CFG, overrides=paths))
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    (corpus,) = resolve_dot_names(nlp.config, ["corpora.train"])
    examples = list(corpus(nlp))
    # Each doc: original, its noisy copy, the swapped copy and its noisy
    # copy (the swap reads the KB: labels CHEM and DIS are record types).
    assert len(examples) == 4 * len(TRAIN_DATA)
    swapped = [eg for eg in examples if any(e.kb_id_ for e in eg.reference.ents)]
    assert swapped
    for eg in swapped:
        for ent in eg.reference.ents:
            record = next(r for r in KB_RECORDS if r.id == ent.kb_id_)
            assert ent.text.lower() in {n.lower() for n in record.all_names()}
    optimizer = nlp.initialize(lambda: examples)
    losses: dict = {}
    nlp.update(examples, sgd=optimizer, losses=losses)
    assert losses["transformer_ner"] > 0
    assert registry.augmenters.get("spacy_llm_ner.noise_augmenter.v1")
