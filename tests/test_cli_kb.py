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
    assert "bad.jsonl" in result.output and "line 2" in result.output and "name" in result.output
    assert not (tmp_path / "kb").exists()
