"""LinkerKB: entities, spaCy KnowledgeBase API, serialisation (bytes, disk,
pickle), add_entities, vectors, and use inside spaCy's entity_linker."""
import importlib.util
import pickle
from pathlib import Path
from typing import List

import numpy as np
import pytest
import spacy
from spacy.kb import Candidate, KnowledgeBase
from spacy.training import Example

from spacy_llm_ner.kb import EntityRecord, KBFormatError, LinkerKB


def records() -> List[EntityRecord]:
    return [
        EntityRecord(id="D006973", name="Hypertension", aliases=["High Blood Pressure", "Blood Pressure, High"],
                     description="Persistently high arterial blood pressure.", type="Disease", alt_ids=["D000001"]),
        EntityRecord(id="D009369", name="Neoplasms", aliases=["Tumors", "Cancer"], type="Disease", prior=0.5),
        EntityRecord(id="D051436", name="Renal Insufficiency, Chronic", aliases=["Chronic Kidney Disease", "CKD"],
                     type="Disease", prior=0.2),
        EntityRecord(id="G1", name="CKD", aliases=["Cyclin Kinase D"], type="Gene", prior=0.8,
                     alias_priors={"CKD": 0.9}),
    ]


@pytest.fixture
def nlp():
    return spacy.blank("en")


@pytest.fixture
def kb(nlp):
    return LinkerKB.from_records(nlp.vocab, records())


def summary(kb: LinkerKB, *, only: tuple = ("D006973", "D009369", "D051436", "G1")) -> list:
    """The candidate lists of a few look-ups, restricted to `only` entities."""
    return [
        [
            (c.entity_id, c.alias, round(c.prior, 5), round(c.score, 5), c.source)
            for c in kb.candidates(m)
            if c.entity_id in only
        ]
        for m in ["hypertension", "tumor", "hypertensoin", "CKD", "chronic kidney diseases"]
    ]


def test_is_a_spacy_knowledge_base(kb):
    assert isinstance(kb, KnowledgeBase)
    assert len(kb) == 4 and not kb.is_empty()
    assert list(kb.entity_ids) == ["D006973", "D009369", "D051436", "G1"]
    assert kb.entity_ids[-1] == "G1" and "G1" in kb.entity_ids and "nope" not in kb
    assert kb.get_size_entities() == 4
    assert kb.contains_alias("CKD") and not kb.contains_alias("ckd")
    assert set(kb.get_alias_strings()) >= {"Hypertension", "CKD", "Tumors"}


def test_entity_record(kb):
    rec = kb.entity("D006973")
    assert rec.name == "Hypertension" and rec.type == "Disease"
    assert rec.aliases == ["High Blood Pressure", "Blood Pressure, High"]
    assert rec.description.startswith("Persistently") and rec.alt_ids == ["D000001"]
    assert kb.entity("G1").alias_priors["CKD"] == pytest.approx(0.9)
    assert kb.entity("G1").prior == pytest.approx(0.8)
    with pytest.raises(KeyError):
        kb.entity("missing")


def test_resolve_id(kb):
    assert kb.resolve_id("D000001") == ["D006973"]
    assert kb.resolve_id("D006973") == ["D006973"]
    assert kb.resolve_id("D999999") == []


def test_priors_are_bayes_over_shared_alias(kb):
    by_id = {c.entity_id: c for c in kb.candidates("CKD", stages=("exact",))}
    # P(e|CKD) ∝ P(e) P(CKD|e): gene 0.8 * 0.9, disease 0.2 * 1/3.
    gene, disease = 0.8 * 0.9, 0.2 / 3
    assert by_id["G1"].prior == pytest.approx(gene / (gene + disease), rel=1e-5)
    assert by_id["D051436"].prior == pytest.approx(disease / (gene + disease), rel=1e-5)
    assert kb.get_prior_prob("G1", "CKD") == pytest.approx(by_id["G1"].prior)
    assert kb.get_prior_prob("G1", "Hypertension") == 0.0


def test_get_candidates_on_span(kb, nlp):
    doc = nlp("Patients with hypertension and CKD.")
    cands = kb.get_candidates(doc[2:3])
    assert all(isinstance(c, Candidate) for c in cands)
    assert cands[0].entity_ == "D006973" and cands[0].alias_ == "Hypertension"
    assert cands[0].prior_prob == pytest.approx(1.0)
    batch = kb.get_candidates_batch([doc[2:3], doc[4:5]])
    assert [c.entity_ for c in batch[0]] == [c.entity_ for c in cands]
    assert {c.entity_ for c in batch[1]} >= {"G1", "D051436"}
    assert kb.get_alias_candidates("CKD")[0].entity_ == "G1"


def test_get_candidates_uses_doc_abbreviations(kb, nlp):
    doc = nlp("Patients with chronic kidney disease (CKD) were studied. CKD progressed.")
    span = doc[11:12]
    assert span.text == "CKD"
    first = kb.get_candidates(span)[0]
    assert first.entity_ == "D051436"  # the document's definition beats the more frequent gene
    kb.use_doc_abbreviations = False
    assert kb.get_candidates(span)[0].entity_ == "G1"


def test_candidates_for_spans_use_each_docs_abbreviations(kb, nlp):
    defined = nlp("Patients with chronic kidney disease (CKD) were studied. CKD progressed.")
    plain = nlp("CKD progressed.")
    spans = [defined[11:12], plain[0:1], defined[2:5]]
    got = kb.candidates_for_spans(spans, top_k=1)
    assert [c[0].entity_id for c in got] == ["D051436", "G1", "D051436"]
    assert got[0][0].source == "abbreviation"
    kb.use_doc_abbreviations = False
    assert kb.candidates_for_spans(spans[:1])[0] == kb.candidates("CKD")


def test_bytes_round_trip(kb, nlp):
    again = LinkerKB(nlp.vocab).from_bytes(kb.to_bytes())
    assert summary(again) == summary(kb)
    assert again.entity("D006973") == kb.entity("D006973")


@pytest.mark.parametrize("mmap", [True, False])
def test_disk_round_trip(kb, nlp, tmp_path, mmap):
    kb.to_disk(tmp_path / "kb")
    assert (tmp_path / "kb" / "meta.json").exists() and (tmp_path / "kb" / "segments" / "0" / "aliases.marisa").exists()
    again = LinkerKB(nlp.vocab, mmap=mmap).from_disk(tmp_path / "kb")
    assert summary(again) == summary(kb)
    assert list(again.entity_ids) == list(kb.entity_ids)
    # Saving over the folder it is memory-mapped from must not break it.
    again.add_entities([EntityRecord(id="N1", name="Newdisease")])
    again.to_disk(tmp_path / "kb")
    assert summary(again) == summary(kb)
    third = LinkerKB.load(tmp_path / "kb", nlp.vocab)
    assert "N1" in third and third.candidates("newdiseases")[0].entity_id == "N1"


def test_pickle(kb, nlp, tmp_path):
    again = pickle.loads(pickle.dumps(kb))
    assert isinstance(again, LinkerKB) and summary(again) == summary(kb)
    kb.to_disk(tmp_path / "kb")
    mapped = LinkerKB(nlp.vocab).from_disk(tmp_path / "kb")
    assert summary(pickle.loads(pickle.dumps(mapped))) == summary(kb)


def test_config_round_trips(nlp):
    kb = LinkerKB.from_records(nlp.vocab, records(), top_k=2, stages=("exact", "normalized"))
    again = LinkerKB(nlp.vocab).from_bytes(kb.to_bytes())
    assert again.config.top_k == 2 and again.config.stages == ("exact", "normalized")


def test_loading_adopts_saved_vector_length(nlp):
    kb = LinkerKB.from_records(nlp.vocab, records(), entity_vector_length=2)
    again = LinkerKB(nlp.vocab, 64).from_bytes(kb.to_bytes())
    assert again.entity_vector_length == 2 and again.get_vector("G1") == [0.0, 0.0]


def test_add_entities_after_build(kb, nlp):
    before = summary(kb)
    assert kb.add_entities([EntityRecord(id="D000544", name="Alzheimer Disease", aliases=["AD"])]) == 1
    assert kb.candidates("Alzheimer Disease")[0].source == "exact"
    assert kb.candidates("alzheimer's disease")[0].entity_id == "D000544"
    assert kb.candidates("alzhiemer disease")[0].entity_id == "D000544"
    assert kb.candidates("AD")[0].entity_id == "D000544"
    assert summary(kb) == before  # old look-ups unchanged
    # A shared alias across segments: priors are computed over both.
    kb.add_entities([EntityRecord(id="X9", name="CKD", prior=0.8)])
    assert sum(c.prior for c in kb.candidates("CKD", stages=("exact",))) == pytest.approx(1.0)
    with pytest.raises(KBFormatError, match="duplicate entity id 'D006973'"):
        kb.add_entities([EntityRecord(id="D006973", name="again")])
    with pytest.raises(KBFormatError, match="name"):
        kb.add_entities([EntityRecord(id="Y", name="")])
    assert kb.add_entities([]) == 0


def test_many_additions_merge_segments_and_keep_order(kb):
    for i in range(12):
        kb.add_entities([EntityRecord(id=f"N{i}", name=f"Newdisease number {i}")])
    assert len(kb._segments) <= 5
    assert list(kb.entity_ids)[:4] == ["D006973", "D009369", "D051436", "G1"]
    assert list(kb.entity_ids)[4:] == [f"N{i}" for i in range(12)]
    assert kb.candidates("newdisease number 7")[0].entity_id == "N7"
    kb.compact()
    assert len(kb._segments) == 1 and len(kb) == 16
    assert kb.candidates("newdisease number 7")[0].entity_id == "N7"
    assert kb.entity("G1").alias_priors["CKD"] == pytest.approx(0.9)


def test_entity_vectors(nlp):
    kb = LinkerKB.from_records(nlp.vocab, records(), entity_vector_length=3)
    assert kb.get_vector("G1") == [0.0, 0.0, 0.0]
    kb.set_vectors(["G1", "D006973"], np.array([[1, 2, 3], [4, 5, 6]]))
    assert kb.get_vector("G1") == [1.0, 2.0, 3.0]
    assert kb.get_vectors(["D006973"]) == [[4.0, 5.0, 6.0]]
    cand = kb.get_candidates(nlp("Hypertension")[0:1])[0]
    assert list(cand.entity_vector) == [4.0, 5.0, 6.0]
    kb.add_entities([EntityRecord(id="N", name="new")], vectors=np.ones((1, 3)))
    again = pickle.loads(pickle.dumps(kb))
    assert again.get_vector("N") == [1.0, 1.0, 1.0] and again.get_vector("G1") == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="shape"):
        kb.set_vectors(["G1"], np.ones((1, 2)))


def test_empty_kb(nlp):
    kb = LinkerKB(nlp.vocab)
    assert kb.is_empty() and len(kb) == 0 and kb.candidates("anything") == []
    again = LinkerKB(nlp.vocab).from_bytes(kb.to_bytes())
    assert again.is_empty()
    kb.add_entities(records())
    assert kb.candidates("tumors")[0].entity_id == "D009369"


def test_inside_spacy_entity_linker(nlp, tmp_path):
    """The stock entity_linker trains, saves and reloads with a LinkerKB."""
    vocab_records = records()
    nlp.add_pipe("sentencizer")
    linker = nlp.add_pipe(
        "entity_linker",
        config={"generate_empty_kb": {"@misc": "spacy_llm_ner.empty_linker_kb.v1"}, "incl_context": False},
    )
    doc = nlp.make_doc("Hypertension was treated.")
    eg = Example.from_dict(doc, {"entities": [(0, 12, "DIS")], "links": {(0, 12): {"D006973": 1.0}}})

    def loader(vocab):
        kb = LinkerKB.from_records(vocab, vocab_records, entity_vector_length=4)
        kb.set_vectors(["D006973"], np.ones((1, 4)))
        return kb

    linker.set_kb(loader)
    nlp.initialize(lambda: [eg])
    assert isinstance(linker.kb, LinkerKB)
    nlp.update([eg], sgd=None)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    kb = loaded.get_pipe("entity_linker").kb
    assert isinstance(kb, LinkerKB) and len(kb) == 4
    assert kb.get_vector("D006973") == [1.0] * 4
    test_doc = loaded.make_doc("Hypertension was treated.")
    test_doc.ents = [test_doc.char_span(0, 12, label="DIS")]  # no NER here: gold mention
    test_doc = loaded.get_pipe("sentencizer")(test_doc)
    assert loaded.get_pipe("entity_linker")(test_doc).ents[0].kb_id_ == "D006973"
    assert pickle.loads(pickle.dumps(loaded.get_pipe("entity_linker").kb)).get_vector("D006973") == [1.0] * 4


def test_build_writes_the_saved_format_of_0_1_0(nlp, tmp_path):
    """Rebuilding the KB of the 0.1.0 fixture pipeline from the records it was
    built from writes the same files, byte for byte: the saved format (array
    names, dtypes, contents; tries; meta) has not moved."""
    fixtures = Path(__file__).parent / "fixtures"
    spec = importlib.util.spec_from_file_location("make_saved_pipeline", fixtures / "make_saved_pipeline.py")
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)  # type: ignore[union-attr]
    saved = fixtures / "pipeline_0.1.0" / "transformer_entity_linker" / "kb"
    LinkerKB.from_records(nlp.vocab, [EntityRecord(**r) for r in maker.RECORDS]).to_disk(tmp_path)
    files = sorted(p.relative_to(saved) for p in (saved / "segments").rglob("*") if p.is_file())
    files += [Path(f"idf_{name}.npy") for name in ("buckets", "values", "n_docs")]
    assert len(files) == 36
    for name in files:
        assert (tmp_path / name).read_bytes() == (saved / name).read_bytes(), name


@pytest.mark.slow
def test_pipeline_with_linker_kb_pickles_and_runs_in_two_processes(nlp):
    """nlp.pipe(n_process=2) ships the pipeline, KB included, to workers."""
    nlp.add_pipe("sentencizer")
    ruler = nlp.add_pipe("entity_ruler")
    linker = nlp.add_pipe("entity_linker", config={"incl_context": False, "incl_prior": True})
    eg = Example.from_dict(
        nlp.make_doc("Hypertension was treated."),
        {"entities": [(0, 12, "DIS")], "links": {(0, 12): {"D006973": 1.0}}},
    )
    linker.set_kb(lambda vocab: LinkerKB.from_records(vocab, records(), entity_vector_length=4))
    nlp.initialize(lambda: [eg])
    ruler.add_patterns([{"label": "DIS", "pattern": [{"LOWER": "hypertension"}]}])  # initialize clears them
    # (The stock EntityLinker itself holds a local function, so a whole nlp
    # with it cannot be pickled; its KB can.)
    kb = pickle.loads(pickle.dumps(linker.kb))
    assert isinstance(kb, LinkerKB) and kb.get_vector("D006973") == [0.0] * 4
    texts = ["Hypertension again.", "No disease here.", "Severe hypertension."] * 4
    expected = [e.kb_id_ for d in nlp.pipe(texts) for e in d.ents]
    docs = list(nlp.pipe(texts, n_process=2, batch_size=2))
    assert expected == ["D006973"] * 8
    assert [e.kb_id_ for d in docs for e in d.ents] == ["D006973"] * 8
