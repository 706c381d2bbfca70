from pathlib import Path

import spacy
from typer.testing import CliRunner

from spacy_llm_ner.cli import app
from spacy_llm_ner.kb.knowledge_base import LinkerKB

ROOT = Path(__file__).resolve().parents[1]


def test_build_kb_writes_a_loadable_kb(tmp_path):
    result = CliRunner().invoke(app, ["build-kb", str(ROOT / "assets" / "demo_kb.jsonl"), str(tmp_path / "kb")])
    assert result.exit_code == 0, result.output
    kb = LinkerKB.load(tmp_path / "kb", spacy.blank("en").vocab)
    assert len(kb) == sum(1 for line in (ROOT / "assets" / "demo_kb.jsonl").open() if line.strip())
    assert kb.candidates("hypertension")[0].entity_id == "DEMO:D0001"


def test_build_kb_names_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "A", "name": "a"}\n{"id": "B"}\n', encoding="utf8")
    result = CliRunner().invoke(app, ["build-kb", str(bad), str(tmp_path / "kb")])
    assert result.exit_code == 1
    # The terminal may wrap a long message anywhere: compare without whitespace.
    output = "".join(result.output.split())
    assert "bad.jsonl" in output and "line2" in output and "name" in output
    assert not (tmp_path / "kb").exists()


def test_build_kb_adds_gold_mentions_as_aliases(tmp_path):
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    kb_file = tmp_path / "kb.jsonl"
    kb_file.write_text('{"id": "D1", "name": "Kidney Failure"}\n{"id": "D2", "name": "Asthma"}\n', encoding="utf8")
    doc = nlp("Acute renal failure and asthma and the flu and breast and ovarian cancer.")
    doc.ents = [
        doc.char_span(0, 19, label="Disease", kb_id="D1"),  # new alias
        doc.char_span(24, 30, label="Disease", kb_id="D2"),  # case differs: a new name too
        doc.char_span(39, 42, label="Disease", kb_id="D9"),  # not in the KB: reported
        doc.char_span(47, 72, label="Disease", kb_id="D3|D4"),  # composite: left out
    ]
    chem = nlp("Renal failure")
    chem.ents = [chem.char_span(0, 13, label="Chemical", kb_id="D2")]  # wrong label: ignored
    DocBin(docs=[doc, chem], store_user_data=True).to_disk(tmp_path / "train.spacy")
    args = ["build-kb", str(kb_file), str(tmp_path / "kb"), "--aliases-from", str(tmp_path / "train.spacy")]
    result = CliRunner().invoke(app, args + ["--alias-label", "Disease"])
    assert result.exit_code == 0, result.output
    assert "2 added" in result.output and "1 with composite ids" in result.output
    assert "1 mentions have ids not in the KB" in result.output and "D9 (1)" in result.output
    kb = LinkerKB.load(tmp_path / "kb", nlp.vocab)
    assert kb.entity("D1").aliases == ["Acute renal failure"]
    assert kb.candidates("Acute renal failure", stages=("exact",))[0].entity_id == "D1"
    assert not kb.candidates("Renal failure", stages=("exact",))


def test_build_kb_saves_the_ngram_retrieval(tmp_path):
    demo = str(ROOT / "assets" / "demo_kb.jsonl")
    result = CliRunner().invoke(app, ["build-kb", demo, str(tmp_path / "kb"), "--ngram-retrieval", "words"])
    assert result.exit_code == 0, result.output
    kb = LinkerKB.load(tmp_path / "kb", spacy.blank("en").vocab)
    assert kb.config.ngram_retrieval == "words"
    assert kb.candidates("hypertensoin")[0].entity_id == "DEMO:D0001"  # a typo, through words
    result = CliRunner().invoke(app, ["build-kb", demo, str(tmp_path / "kb2"), "--ngram-retrieval", "bm25"])
    assert result.exit_code == 1 and "--ngram-retrieval" in result.output and not (tmp_path / "kb2").exists()
