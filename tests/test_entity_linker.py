import csv
import pickle
import random
import shutil
from pathlib import Path

import numpy
import pytest
import spacy
import util
from util import reference
from spacy import displacy
from spacy.kb import InMemoryLookupKB
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import load_config
from thinc.api import fix_random_seed

from spacy_llm_ner.pipeline.display import render_links
from spacy_llm_ner.kb import EntityRecord, LinkerKB
from spacy_llm_ner.pipeline.link_scoring import score_links

ROOT = Path(__file__).resolve().parents[1]
EMERSON = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nel_emerson"
LINKER = "transformer_entity_linker"

RECORDS = [
    EntityRecord("Q_MP", "Mercury", description="the smallest planet, closest to the sun"),
    EntityRecord("Q_ME", "Mercury", aliases=["quicksilver"], description="a toxic liquid metal, a chemical element"),
    EntityRecord("Q_AS", "Aspirin", description="a drug that relieves pain and headache"),
    EntityRecord("Q_PA", "Paris", description="the capital city of France"),
]
# (text, [(start, end, label, kb_id)]): "Mercury" is two entities told apart
# by context; "Paris" has one candidate, wrong in the last sentence.
DATA = [
    ("Mercury is the closest planet to the sun.", [(0, 7, "LOC", "Q_MP")]),
    ("Mercury is a toxic metal found in fish.", [(0, 7, "CHEM", "Q_ME")]),
    ("The probe flew past Mercury and the sun.", [(20, 27, "LOC", "Q_MP")]),
    ("Fish contain mercury from polluted water.", [(13, 20, "CHEM", "Q_ME")]),
    ("Aspirin relieves headache.", [(0, 7, "CHEM", "Q_AS")]),
    ("She took aspirin for the pain.", [(9, 16, "CHEM", "Q_AS")]),
    ("Quicksilver is a liquid metal.", [(0, 11, "CHEM", "Q_ME")]),
    ("Paris is the capital of France.", [(0, 5, "LOC", "Q_PA")]),
    ("We visited Paris in the spring.", [(11, 16, "LOC", "Q_PA")]),
    ("Paris posted a selfie on the red carpet.", [(0, 5, "PER", "NIL")]),
]
PARIS_LINKED, PARIS_NIL = DATA[-3], DATA[-1]
TRAINING = {"tok2vec": (30, 0.002), "transformer": (60, 0.005)}


# Tiny models are faster on one torch thread (and the machine is shared).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_nlp(backbone: str, model_dir: str = "", **cfg) -> spacy.Language:
    return util.make_nlp(backbone, component=LINKER, model_dir=model_dir, **cfg)


def examples(nlp, data):
    return [Example(nlp.make_doc(text), reference(nlp, text, ents)) for text, ents in data]


def with_ents(nlp, text, ents) -> Doc:
    """A new doc with the entities set (as an NER would) but no links."""
    doc = nlp.make_doc(text)
    doc.ents = [doc.char_span(s, e, label=label) for s, e, label, *_ in ents]
    return doc


def kb_loader(records=RECORDS):
    return lambda vocab: LinkerKB.from_records(vocab, records)


def fit(nlp, data, *, steps, learn_rate):
    egs = examples(nlp, data)
    nlp.get_pipe(LINKER).set_kb(LinkerKB.from_records(nlp.vocab, RECORDS))
    optimizer = nlp.initialize(lambda: egs)
    optimizer.learn_rate = learn_rate
    for _ in range(steps):
        nlp.update(egs, sgd=optimizer, losses={})
    return egs


def links(doc):
    return [(e.text, e.kb_id_) for e in doc.ents]


def clone(nlp):
    other = spacy.blank("en").from_config(nlp.config)
    return other.from_bytes(nlp.to_bytes())


@pytest.fixture(scope="module")
def bert_dir(tiny_bert_dir, tmp_path_factory) -> str:
    """The conftest's tiny BERT (its vocabulary and tokenizer) with weights
    drawn from a fixed seed, so the transformer tests do not depend on the
    session's random draw."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("seeded_bert")
    for path in Path(tiny_bert_dir).iterdir():
        if path.is_file() and path.name != "config.json" and not path.name.startswith(("model", "pytorch_model")):
            shutil.copy(path, folder / path.name)
    torch.manual_seed(0)
    BertModel(BertConfig.from_pretrained(tiny_bert_dir)).save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="module", params=["tok2vec", "transformer"])
def trained(request, bert_dir):
    fix_random_seed(0)
    nlp = make_nlp(request.param, bert_dir)
    steps, learn_rate = TRAINING[request.param]
    fit(nlp, DATA, steps=steps, learn_rate=learn_rate)
    return nlp


def test_overfit_save_and_reload(trained, tmp_path):
    for text, ents in DATA:
        doc = trained(with_ents(trained, text, ents))
        assert [e.kb_id_ for e in doc.ents] == [k for *_, k in ents], text
    trained.to_disk(tmp_path / "model")
    assert (tmp_path / "model" / LINKER / "kb" / "meta.json").exists()
    reloaded = spacy.load(tmp_path / "model")
    assert len(reloaded.get_pipe(LINKER).kb) == len(RECORDS)
    for text, ents in DATA:
        a, b = trained(with_ents(trained, text, ents)), reloaded(with_ents(reloaded, text, ents))
        assert links(a) == links(b)
        assert [e._.kb_score for e in a.ents] == pytest.approx([e._.kb_score for e in b.ents], abs=1e-5)


def test_pipe_equals_call(trained):
    texts = [(t, e) for t, e in DATA] * 2 + [("", []), ("Quicksilver", [(0, 11, "CHEM")])]
    piped = list(trained.pipe([with_ents(trained, t, e) for t, e in texts], batch_size=3))
    for (text, ents), doc in zip(texts, piped):
        single = trained(with_ents(trained, text, ents))
        assert links(doc) == links(single)
        assert [e._.kb_score for e in doc.ents] == pytest.approx([e._.kb_score for e in single.ents], abs=1e-5)


def test_entity_cache_does_not_change_scores(trained):
    nlp = clone(trained)
    linker = nlp.get_pipe(LINKER)
    cached = [nlp(with_ents(nlp, t, e)).ents[0]._.kb_candidates for t, e in DATA]
    assert set(linker.entity_encoder.cached_ids) == {r.id for r in RECORDS}
    linker.cfg["cache_size"] = 0
    linker.clear_cache()
    fresh = [nlp(with_ents(nlp, t, e)).ents[0]._.kb_candidates for t, e in DATA]
    assert not linker.entity_encoder.cached_ids
    for a, b in zip(cached, fresh):
        assert [e for e, _ in a] == [e for e, _ in b]
        assert [p for _, p in a] == pytest.approx([p for _, p in b], abs=1e-5)


def test_bytes_round_trip_includes_kb(trained):
    other = clone(trained)
    linker, other_linker = trained.get_pipe(LINKER), other.get_pipe(LINKER)
    assert other_linker.cfg == linker.cfg
    assert list(other_linker.kb.entity_ids) == list(linker.kb.entity_ids)
    assert other_linker.kb.entity("Q_ME").description == RECORDS[1].description
    for text, ents in DATA:
        assert links(other(with_ents(other, text, ents))) == links(trained(with_ents(trained, text, ents)))


def test_mention_without_candidates_is_nil(trained):
    doc = trained(with_ents(trained, "Zorblax is far away.", [(0, 7, "LOC")]))
    ent = doc.ents[0]
    assert ent.kb_id_ == "NIL"
    assert ent._.kb_candidates == []
    assert ent._.kb_score == 1.0


def test_lone_candidate_is_scored_against_nil(trained):
    """"Paris" has one candidate; the context decides whether it is taken."""
    ent = trained(with_ents(trained, *PARIS_NIL)).ents[0]
    assert ent.kb_id_ == "NIL"
    [(entity_id, p)] = ent._.kb_candidates
    assert entity_id == "Q_PA" and p < 0.5
    ent = trained(with_ents(trained, *PARIS_LINKED)).ents[0]
    assert ent.kb_id_ == "Q_PA" and 0.5 < ent._.kb_score < 1.0


def test_threshold_one_links_nothing(trained):
    nlp = clone(trained)
    nlp.get_pipe(LINKER).cfg["threshold"] = 1.0
    for text, ents in DATA:
        doc = nlp(with_ents(nlp, text, ents))
        assert [e.kb_id_ for e in doc.ents] == ["NIL"]
        assert doc.ents[0]._.kb_candidates  # still scored and stored


def test_custom_nil_id():
    fix_random_seed(0)
    nlp = make_nlp("tok2vec", nil_id="-OOKB-")
    data = [(t, [(s, e, label, "-OOKB-" if k == "NIL" else k) for s, e, label, k in ents]) for t, ents in DATA]
    fit(nlp, data, steps=30, learn_rate=0.002)
    assert links(nlp(with_ents(nlp, *data[-1]))) == [("Paris", "-OOKB-")]
    assert links(nlp(with_ents(nlp, *data[-3]))) == [("Paris", "Q_PA")]
    assert links(nlp(with_ents(nlp, "Zorblax", [(0, 7, "LOC")]))) == [("Zorblax", "-OOKB-")]


def test_added_entity_is_linkable_without_retraining(trained, tmp_path):
    nlp = clone(trained)
    linker = nlp.get_pipe(LINKER)
    text, ents = "Zorblax is the closest planet to the sun.", [(0, 7, "LOC")]
    assert links(nlp(with_ents(nlp, text, ents))) == [("Zorblax", "NIL")]
    assert linker.add_entities([EntityRecord("Q_NEW", "Zorblax", description="a small planet close to the sun")]) == 1
    doc = nlp(with_ents(nlp, text, ents))
    assert links(doc) == [("Zorblax", "Q_NEW")]
    assert doc.ents[0]._.kb_candidates[0][0] == "Q_NEW"
    nlp.to_disk(tmp_path / "model")
    reloaded = spacy.load(tmp_path / "model")
    assert links(reloaded(with_ents(reloaded, text, ents))) == [("Zorblax", "Q_NEW")]


def test_candidates_and_scores_survive_docbin(trained):
    docs = list(trained.pipe([with_ents(trained, t, e) for t, e in DATA]))
    restored = list(DocBin().from_bytes(DocBin(docs=docs).to_bytes()).get_docs(trained.vocab))
    for a, b in zip(docs, restored):
        assert links(a) == links(b)
        assert [e._.kb_candidates for e in a.ents] == [e._.kb_candidates for e in b.ents]
        assert [e._.kb_score for e in a.ents] == [e._.kb_score for e in b.ents]
        for ent in b.ents:
            assert all(0.0 <= p < 1.0 for _, p in ent._.kb_candidates)
            assert [p for _, p in ent._.kb_candidates] == sorted((p for _, p in ent._.kb_candidates), reverse=True)
        group = b.spans[LINKER]
        assert [s.kb_id_ for s in group] == [e.kb_id_ for e in b.ents]


def test_scores(trained):
    egs = [Example(with_ents(trained, t, e), reference(trained, t, e)) for t, e in DATA]
    scores = trained.evaluate(egs)
    assert scores["nel_micro_f"] == 1.0
    assert scores["nel_candidate_recall"] == 1.0
    assert scores["nel_inkb_accuracy"] == 1.0


def test_docs_without_entities(trained):
    for text in ["", "Nothing to link here.", "Mercury"]:
        doc = trained(text)
        assert doc.ents == ()
        assert len(doc.spans[LINKER]) == 0


@pytest.mark.parametrize("order", ["after", "before"])
def test_with_ner(order):
    """With the NER first, its entities are linked; a linker placed before
    the NER would never see them, which initialize reports."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec")
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 96}
    nlp.add_pipe("transformer_ner", config={"model": {"tok2vec": listener}})
    nlp.add_pipe(LINKER, config={"model": {"tok2vec": listener}}, **({"before": "transformer_ner"} if order == "before" else {}))
    if order == "before":
        with pytest.raises(ValueError, match="runs before 'transformer_ner', which sets doc.ents"):
            fit(nlp, DATA, steps=0, learn_rate=0.002)
        return
    fit(nlp, DATA, steps=40, learn_rate=0.002)
    doc = nlp(DATA[0][0])
    assert [e.text for e in doc.ents] == ["Mercury"]
    assert links(doc) == [("Mercury", "Q_MP")]
    scores = nlp.evaluate(examples(nlp, DATA))
    assert scores["nel_micro_f"] == 1.0 and scores["ents_f"] == 1.0


def test_initialize_without_kb_is_an_error():
    nlp = make_nlp("tok2vec")
    egs = examples(nlp, DATA)
    with pytest.raises(ValueError, match="has no knowledge base: set \\[initialize.components.transformer_entity_linker.kb_loader\\]"):
        nlp.initialize(lambda: egs)


def test_kb_loader_from_config_and_bad_kbs(tmp_path):
    nlp = make_nlp("tok2vec")
    egs = examples(nlp, DATA)
    path = tmp_path / "kb.jsonl"
    path.write_text("\n".join(f'{{"id": "{r.id}", "name": "{r.name}"}}' for r in RECORDS), encoding="utf8")
    nlp.config["initialize"]["components"][LINKER] = {
        "kb_loader": {"@misc": "spacy_llm_ner.load_kb_jsonl.v1", "path": str(path)}
    }
    nlp.initialize(lambda: egs)
    assert len(nlp.get_pipe(LINKER).kb) == len(RECORDS)
    linker = nlp.get_pipe(LINKER)
    with pytest.raises(ValueError, match="is empty"):
        linker.initialize(lambda: egs, nlp=nlp, kb_loader=kb_loader([]))
    with pytest.raises(ValueError, match="needs a spacy_llm_ner LinkerKB"):
        linker.initialize(lambda: egs, nlp=nlp, kb_loader=lambda vocab: InMemoryLookupKB(vocab, 1))


def test_missing_or_corrupt_kb_files_on_load(trained, tmp_path):
    trained.to_disk(tmp_path / "model")
    kb_dir = tmp_path / "model" / LINKER / "kb"
    (kb_dir / "meta.json").write_text("{not json", encoding="utf8")
    with pytest.raises(ValueError, match=f"Could not load the knowledge base .* from {kb_dir}"):
        spacy.load(tmp_path / "model")
    shutil.rmtree(kb_dir)
    with pytest.raises(ValueError, match=f"knowledge base .* is missing: expected a LinkerKB folder at {kb_dir}"):
        spacy.load(tmp_path / "model")


def test_pickled_linker_works_on_its_own(trained):
    nlp = clone(trained)  # (a pipeline fresh from training holds unpicklable backprop callbacks)
    linker = pickle.loads(pickle.dumps(nlp.get_pipe(LINKER)))
    text, ents = DATA[1]
    doc = with_ents(nlp, text, ents)
    for name, proc in nlp.pipeline[:-1]:
        doc = proc(doc)
    assert links(linker(doc)) == [("Mercury", "Q_ME")]


def test_render_links(trained):
    linked = trained(with_ents(trained, *DATA[1]))
    unlinked = trained(with_ents(trained, "Zorblax is far away.", [(0, 7, "LOC")]))
    html = render_links(linked, kb_url_template="https://example.org/{}")
    assert "https://example.org/Q_ME" in html
    assert f"CHEM {linked.ents[0]._.kb_score:.2f}" in html
    html = render_links(unlinked, kb_url_template="https://example.org/{}")
    assert "LOC 1.00" in html and ">NIL<" in html and "https://example.org/NIL" not in html
    plain = displacy.render(linked, style="ent", options={"kb_url_template": "https://example.org/{}"})
    assert "https://example.org/Q_ME" in plain


@pytest.mark.parametrize("option,value,message", [("threshold", 1.5, "threshold must be in"), ("top_k", 0, "top_k must be")])
def test_config_errors_are_clear(option, value, message):
    with pytest.raises(ValueError, match=message):
        make_nlp("tok2vec", **{option: value})


def test_shipped_config_builds_and_trains(bert_dir):
    """configs/ner_el.cfg with the tiny BERT: one shared transformer, the KB
    from paths.kb, a few updates, and the nel scores."""
    from spacy_llm_ner.corpora import read_jsonl

    config = load_config(ROOT / "configs" / "ner_el.cfg", interpolate=True, overrides={
        "vars.transformer_name": bert_dir, "paths.kb": str(ROOT / "assets" / "demo_kb.jsonl"),
    })
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.pipe_names == ["transformer", "transformer_ner", LINKER]
    trf = nlp.get_pipe("transformer")
    docs = list(read_jsonl(ROOT / "assets" / "demo_train.jsonl", nlp=nlp))[:8]
    egs = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    optimizer = nlp.initialize(lambda: egs)
    assert set(trf.listener_map) == {"transformer_ner", LINKER}
    assert len(nlp.get_pipe(LINKER).kb) == 86
    for _ in range(2):
        losses = nlp.update(egs, sgd=optimizer, losses={})
    assert losses[LINKER] > 0
    scores = nlp.evaluate(egs)
    assert {"nel_micro_f", "nel_candidate_recall", "nel_inkb_accuracy"} <= set(scores)
    assert scores["nel_candidate_recall"] > 0.9


def _emerson_data(nlp):
    from spacy_llm_ner.corpora import read_jsonl

    with (EMERSON / "entities.csv").open(encoding="utf8") as f:
        records = [EntityRecord(qid, name, aliases=["Emerson"], description=desc) for qid, name, desc in csv.reader(f)]
    by_entity = {}
    for doc in read_jsonl(EMERSON / "emerson_annotated_text.jsonl", nlp=nlp):
        by_entity.setdefault(doc.ents[0].kb_id_, []).append(doc)
    return records, by_entity


@pytest.mark.skipif(not EMERSON.exists(), reason="spaCy's nel_emerson tutorial data not present")
def test_emerson_held_out_beats_prior_baseline():
    """spaCy's NEL tutorial: three entities all called "Emerson". Train on 7
    sentences each, link the 9 held-out ones."""
    fix_random_seed(0)
    random.seed(0)
    nlp = make_nlp("tok2vec")
    records, by_entity = _emerson_data(nlp)
    assert len(records) == 3 and all(len(docs) == 10 for docs in by_entity.values())
    train_docs = [d for docs in by_entity.values() for d in docs[:7]]
    test_docs = [d for docs in by_entity.values() for d in docs[7:]]
    egs = [Example(nlp.make_doc(d.text), d) for d in train_docs]
    linker = nlp.get_pipe(LINKER)
    linker.set_kb(LinkerKB.from_records(nlp.vocab, records))
    optimizer = nlp.initialize(lambda: egs)
    for _ in range(20):
        random.shuffle(egs)
        for i in range(0, len(egs), 8):
            nlp.update(egs[i : i + 8], sgd=optimizer, losses={})
    gold = [d.ents[0].kb_id_ for d in test_docs]
    baseline = [linker.kb.candidates(d.ents[0].text)[0].entity_id for d in test_docs]
    predicted = []
    for d in test_docs:
        doc = nlp.make_doc(d.text)
        doc.ents = [doc.char_span(d.ents[0].start_char, d.ents[0].end_char, label="PERSON")]
        predicted.append(nlp(doc).ents[0].kb_id_)
    accuracy = sum(p == g for p, g in zip(predicted, gold)) / len(gold)
    baseline_accuracy = sum(p == g for p, g in zip(baseline, gold)) / len(gold)
    assert baseline_accuracy == pytest.approx(1 / 3)
    assert accuracy >= 0.55 > baseline_accuracy
    scores = nlp.evaluate([Example(nlp.make_doc(d.text), d) for d in test_docs])
    assert scores["nel_candidate_recall"] == 1.0
    assert scores["nel_inkb_accuracy"] == pytest.approx(accuracy)


def test_labels_restricts_linking_and_scoring():
    """With labels=["CHEM"], LOC/PER entities are neither trained on, linked,
    nor counted by the scorer (their gold ids are not the linker's misses)."""
    fix_random_seed(0)
    nlp = make_nlp("tok2vec", labels=["CHEM"])
    fit(nlp, DATA, steps=30, learn_rate=0.002)
    for text, ents in DATA:
        doc = nlp(with_ents(nlp, text, ents))
        [(label, gold)] = [(label, k) for *_, label, k in ents]
        ent = doc.ents[0]
        if label == "CHEM":
            assert ent.kb_id_ == gold and ent._.kb_candidates
        else:
            assert ent.kb_id_ == "" and ent._.kb_candidates is None
        assert [s.label_ for s in doc.spans[LINKER]] == [label] * (label == "CHEM")
    scores = nlp.evaluate([Example(with_ents(nlp, t, e), reference(nlp, t, e)) for t, e in DATA])
    assert scores["nel_micro_f"] == 1.0 and scores["nel_inkb_accuracy"] == 1.0
    assert set(scores["nel_f_per_type"]) == {"CHEM"}
    # Without the restriction the same predictions miss the LOC links.
    unrestricted = score_links([Example(nlp(with_ents(nlp, t, e)), reference(nlp, t, e)) for t, e in DATA])
    assert unrestricted["nel_micro_r"] < 1.0


def test_show_cli_prints_links_and_writes_linked_html(trained, tmp_path):
    from typer.testing import CliRunner

    from spacy_llm_ner.cli import app

    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "CHEM", "pattern": "Quicksilver"}])
    for name in trained.pipe_names:
        nlp.add_pipe(name, source=trained)
    nlp.get_pipe(LINKER).set_kb(trained.get_pipe(LINKER).kb)
    nlp.to_disk(tmp_path / "model")
    html = tmp_path / "out.html"
    args = ["show", str(tmp_path / "model"), "--text", "Quicksilver is a liquid metal.", "--html", str(html),
            "--kb-url-template", "https://example.org/{}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (ent,) = spacy.load(tmp_path / "model")("Quicksilver is a liquid metal.").ents
    assert ent.kb_id_ == "Q_ME"
    assert "Q_ME" in result.output and f"{ent._.kb_score:.3f}" in result.output
    assert "https://example.org/Q_ME" in html.read_text(encoding="utf8")


def test_precomputed_entities_are_saved_and_give_the_same_links(trained, tmp_path):
    nlp = clone(trained)
    linker = nlp.get_pipe(LINKER)
    before = [nlp(with_ents(nlp, t, e)).ents[0]._.kb_candidates for t, e in DATA]
    assert linker.precompute_entities() == len(RECORDS)
    nlp.to_disk(tmp_path / "model")
    assert (tmp_path / "model" / LINKER / "entity_vectors" / "vectors.npy").exists()
    reloaded = spacy.load(tmp_path / "model")
    loaded = reloaded.get_pipe(LINKER)
    assert set(loaded.entity_encoder.cached_ids) == {r.id for r in RECORDS}
    # The loaded vectors are the ones the backbone gives.
    fresh = loaded.encode_entities([r.id for r in RECORDS], use_cache=False)
    for record, vector in zip(RECORDS, fresh):
        numpy.testing.assert_allclose(loaded.entity_encoder.vector(record.id), vector, rtol=1e-4, atol=1e-5)
    after = [reloaded(with_ents(reloaded, t, e)).ents[0]._.kb_candidates for t, e in DATA]
    for a, b in zip(before, after):
        assert [e for e, _ in a] == [e for e, _ in b]
        assert [p for _, p in a] == pytest.approx([p for _, p in b], abs=1e-5)
    # Pickled (nlp.pipe workers) with the vectors.
    assert set(pickle.loads(pickle.dumps(loaded)).entity_encoder.cached_ids) == {r.id for r in RECORDS}


def test_training_drops_precomputed_entities(trained, tmp_path):
    nlp = clone(trained)
    linker = nlp.get_pipe(LINKER)
    linker.precompute_entities()
    nlp.to_disk(tmp_path / "model")
    assert (tmp_path / "model" / LINKER / "entity_vectors").exists()
    nlp.update(examples(nlp, DATA[:2]), sgd=nlp.resume_training())
    nlp(with_ents(nlp, *DATA[0]))  # caches what it encodes: not a precomputed KB
    assert linker.entity_encoder.cached_ids
    nlp.to_disk(tmp_path / "model")
    assert not (tmp_path / "model" / LINKER / "entity_vectors").exists()


def test_precompute_refuses_a_kb_above_the_cache_size(trained):
    nlp = clone(trained)
    linker = nlp.get_pipe(LINKER)
    linker.cfg["cache_size"] = len(RECORDS) - 1
    with pytest.raises(ValueError, match="cache_size"):
        linker.precompute_entities()
