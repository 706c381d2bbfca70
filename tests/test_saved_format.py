"""Pipelines saved by an earlier version keep loading and annotating the same.

`tests/fixtures/pipeline_0.1.0` was written by `make_saved_pipeline.py` with
the code of version 0.1.0 (before the entity linker was split into parts);
`expected.json` holds what that version predicted on its texts.
"""
import json
from pathlib import Path

import pytest
import spacy

FIXTURES = Path(__file__).parent / "fixtures"
SAVED = sorted(p for p in FIXTURES.glob("pipeline_*") if p.is_dir())


@pytest.mark.parametrize("path", SAVED, ids=[p.name for p in SAVED])
def test_saved_pipeline_loads_and_annotates_as_before(path):
    expected = json.loads((path / "expected.json").read_text(encoding="utf8"))
    nlp = spacy.load(path)
    linker = nlp.get_pipe("transformer_entity_linker")
    assert len(linker.kb) == 5
    docs = list(nlp.pipe([item["text"] for item in expected]))
    for doc, item in zip(docs, expected):
        got = [[e.start_char, e.end_char, e.label_, e.kb_id_] for e in doc.ents]
        assert got == [e[:4] for e in item["ents"]], doc.text
        for ent, (*_, ner_confidence, kb_score) in zip(doc.ents, item["ents"]):
            assert ent._.ner_confidence == pytest.approx(ner_confidence, abs=1e-4)
            assert ent._.kb_score == pytest.approx(kb_score, abs=1e-4)
        for ent, candidates in zip(doc.ents, item["candidates"]):
            assert [c for c, _ in ent._.kb_candidates] == [c for c, _ in candidates]
            assert [p for _, p in ent._.kb_candidates] == pytest.approx([p for _, p in candidates], abs=1e-4)


def test_saved_pipeline_round_trips(tmp_path):
    """Saving a loaded old pipeline with the current code keeps its links."""
    path = SAVED[0]
    nlp = spacy.load(path)
    nlp.to_disk(tmp_path / "again")
    again = spacy.load(tmp_path / "again")
    text = json.loads((path / "expected.json").read_text(encoding="utf8"))[0]["text"]
    assert [(e.text, e.kb_id_) for e in nlp(text).ents] == [(e.text, e.kb_id_) for e in again(text).ents]
    assert (tmp_path / "again" / "transformer_entity_linker" / "entity_vectors" / "vectors.npy").exists()
