"""Corpus files as they come (issue #23): a PubTator mention that does not
match its text can be skipped (the document, or the mention), each one
reported and counted; link ids with stray whitespace are stripped and
counted; CoNLL and JSONL files cut inside their last line are reported."""
import warnings
from pathlib import Path

import pytest
import spacy
from typer.testing import CliRunner

from spacy_llm_ner.cli import app
from spacy_llm_ner.corpora import ConvertStats, convert, read_conll, read_jsonl, read_pubtator

CUT = "no final newline: the last line may be cut short (file truncated?)"
DOC1 = "1|t|Lithium toxicity.\n1|a|Renal failure was seen.\n1\t0\t7\tLithium\tChemical\tD008094\n1\t18\t31\tRenal failure\tDisease\tD051437\n"
DOC2 = "2|t|Fever.\n2|a|\n2\t0\t5\tFever\tDisease\tD005334\n"
# Document 1 with a mention column that matches nothing at its offsets (line 4).
BAD1 = DOC1.replace("\tRenal failure\t", "\tKidney failure\t")
MISMATCH = "column 4 (mention): 'Kidney failure' does not match the text at 18-31: 'Renal failure'"


def flat(output: str) -> str:
    """CLI output without whitespace (the terminal may wrap a long message anywhere)."""
    return "".join(output.split())


def read_warned(reader, path, **kwargs):
    """The Docs and the warning messages of one read."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = list(reader(path, **kwargs))
    return docs, [str(w.message) for w in caught]


def pubtator(path: Path, **kwargs):
    return read_warned(read_pubtator, path, nlp=spacy.blank("en"), **kwargs)


# -- PubTator --on-error ---------------------------------------------------------------


def test_mismatch_is_an_error_by_default(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text(BAD1 + "\n" + DOC2, encoding="utf8")
    with pytest.raises(ValueError) as info:
        pubtator(path)
    assert str(info.value) == f"{path}, line 4, {MISMATCH}"


@pytest.mark.parametrize("on_error", ["skip", "skip-doc"])
def test_skip_drops_the_whole_document(tmp_path, on_error):
    path = tmp_path / "bad.txt"
    path.write_text(BAD1 + "\n" + DOC2, encoding="utf8")
    stats = ConvertStats()
    docs, messages = pubtator(path, stats=stats, on_error=on_error)
    assert [d.text for d in docs] == ["Fever. "]
    assert stats.skipped == {"documents with a bad mention (on_error=skip)": 1}
    assert messages == [f"{path}, line 4, {MISMATCH}; document 1 (line 1) skipped (on_error={on_error!r})"]


def test_skip_mention_keeps_the_document(tmp_path):
    path = tmp_path / "bad.txt"
    # One more bad record: offsets outside the text.
    path.write_text(BAD1 + "1\t40\t99\tfoo\tDisease\tD1\n\n" + DOC2, encoding="utf8")
    stats = ConvertStats()
    docs, messages = pubtator(path, stats=stats, on_error="skip-mention")
    assert [[e.text for e in d.ents] for d in docs] == [["Lithium"], ["Fever"]]
    assert stats.skipped == {"bad mentions (on_error=skip-mention; their documents kept)": 2}
    assert messages == [
        f"{path}, line 4, {MISMATCH}; mention skipped (on_error='skip-mention')",
        f"{path}, line 5, columns 2-3 (start, end): span 40-99 is empty or outside the text (length 41); "
        "mention skipped (on_error='skip-mention')",
    ]


def test_skip_keeps_the_whitespace_repair(tmp_path):
    path = tmp_path / "ws.txt"
    path.write_text(DOC1.replace("\tLithium\t", "\tLithium  \t"), encoding="utf8")
    stats = ConvertStats()
    docs, messages = pubtator(path, stats=stats, on_error="skip")
    assert len(docs[0].ents) == 2 and not stats.skipped and not messages
    assert stats.repaired == {"mentions with stray whitespace": 1}


def test_skip_leaves_structural_errors_errors(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text(DOC1 + "1\t0\t7\tLithium\n", encoding="utf8")
    with pytest.raises(ValueError, match=r"line 5, columns: expected at least 6"):
        pubtator(path, on_error="skip")


def test_unknown_on_error(tmp_path):
    path = tmp_path / "ok.txt"
    path.write_text(DOC1, encoding="utf8")
    with pytest.raises(ValueError, match=r"on_error must be one of 'raise', 'skip', 'skip-doc', 'skip-mention' \(got 'ignore'\)"):
        pubtator(path, on_error="ignore")


def test_convert_cli_on_error_skip(tmp_path):
    path = tmp_path / "bad.PubTator.txt"
    path.write_text(BAD1 + "\n" + DOC2, encoding="utf8")
    out = tmp_path / "out.spacy"
    result = CliRunner().invoke(app, ["convert", str(path), str(out)])
    assert result.exit_code == 1 and flat(f"{path}, line 4, {MISMATCH}") in flat(result.output)
    result = CliRunner().invoke(app, ["convert", str(path), str(out), "--on-error", "skip"])
    assert result.exit_code == 0, result.output
    assert flat(f"{path}, line 4, {MISMATCH}; document 1 (line 1) skipped") in flat(result.output)
    assert "1 docs" in result.output and "Not kept: 1 documents with a bad mention (on_error=skip)" in result.output


def test_on_error_only_for_pubtator(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("Lithium\tB-Chemical\n", encoding="utf8")
    with pytest.raises(ValueError, match=r"on_error='skip' applies to PubTator files only \(this one reads as conll\)"):
        convert(path, tmp_path / "out.spacy", on_error="skip")


# -- Link ids with stray whitespace -------------------------------------------------


def test_pubtator_link_ids_stripped_and_counted(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text(DOC1.replace("\tD008094\n", "\t D008094 \n").replace("\tD051437\n", "\tMESH:D051437 \n"), encoding="utf8")
    stats = ConvertStats()
    docs, _ = pubtator(path, stats=stats)
    assert [e.kb_id_ for e in docs[0].ents] == ["D008094", "MESH:D051437"]
    assert stats.repaired == {"link ids with stray whitespace (stripped)": 2}
    assert stats.examples["link ids with stray whitespace (stripped)"] == f"{path}, line 3, column 6 (id): ' D008094 '"


def test_jsonl_link_ids_stripped_and_counted(tmp_path):
    path = tmp_path / "ids.jsonl"
    path.write_text(
        '{"text": "Emerson won.", "spans": [{"start": 0, "end": 7, "label": "PERSON", "kb_id": "Q312545\\t"}]}\n'
        '{"text": "Emerson wrote.", "spans": [{"start": 0, "end": 7, "label": "PERSON"}], "accept": [" Q48226"]}\n',
        encoding="utf8",
    )
    stats = ConvertStats()
    docs, _ = read_warned(read_jsonl, path, nlp=spacy.blank("en"), stats=stats)
    assert [d.ents[0].kb_id_ for d in docs] == ["Q312545", "Q48226"]
    assert stats.repaired == {"link ids with stray whitespace (stripped)": 2}
    assert stats.examples["link ids with stray whitespace (stripped)"] == f"{path}, line 1, spans[0].kb_id: 'Q312545\\t'"


def test_convert_cli_shows_id_repairs_with_an_example(tmp_path):
    path = tmp_path / "ids.PubTator.txt"
    path.write_text(DOC1.replace("\tD008094\n", "\tD008094 \n"), encoding="utf8")
    result = CliRunner().invoke(app, ["convert", str(path), str(tmp_path / "out.spacy")])
    assert result.exit_code == 0, result.output
    assert flat(f"Repaired: 1 link ids with stray whitespace (stripped) (first: {path}, line 3, column 6 (id): 'D008094 ')") in flat(result.output)


# -- CoNLL and JSONL cut inside their last line -----------------------------------------

CONLL = "-DOCSTART- O\n\nLithium\tB-Chemical\ncaused\tO\n\nRenal\tB-Disease\nfail\tI-Disease"
JSONL = '{"text": "Lithium.", "entities": [[0, 7, "Chemical"]]}\n{"text": "Renal fail", "entities": [[0, 10, "Disease"]]}'


@pytest.mark.parametrize("name,text,last", [("cut.conll", CONLL, 7), ("cut.jsonl", JSONL, 2)])
def test_cut_last_line_warns(tmp_path, name, text, last):
    path = tmp_path / name
    path.write_text(text, encoding="utf8")
    reader = (lambda p, **kw: read_conll(p, vocab=spacy.blank("en").vocab, **kw)) if name.endswith("conll") else (
        lambda p, **kw: read_jsonl(p, nlp=spacy.blank("en"), **kw))
    docs, messages = read_warned(reader, path)
    assert messages == [f"{path}, line {last}: {CUT}; read as it is (strict=True or --strict makes this an error)"]
    assert "Renal fail" in " ".join(d.text for d in docs)  # kept as it is: the warning is the point
    with pytest.raises(ValueError) as info:
        read_warned(reader, path, strict=True)
    assert str(info.value) == f"{path}, line {last}, line: {CUT}"
    path.write_text(text + "\n", encoding="utf8")
    assert read_warned(reader, path, strict=True)[1] == []


@pytest.mark.parametrize("name,text,last", [("cut.conll", CONLL, 7), ("cut.jsonl", JSONL, 2)])
def test_convert_cli_strict_conll_jsonl(tmp_path, name, text, last):
    path = tmp_path / name
    path.write_text(text, encoding="utf8")
    out = tmp_path / "out.spacy"
    result = CliRunner().invoke(app, ["convert", str(path), str(out)])
    assert result.exit_code == 0 and flat(f"{path}, line {last}: no final newline") in flat(result.output)
    out.unlink()
    result = CliRunner().invoke(app, ["convert", str(path), str(out), "--strict"])
    assert result.exit_code == 1 and flat(f"{path}, line {last}, line: {CUT}") in flat(result.output)
    assert not out.exists()


def test_every_document_skipped_is_an_error_saying_so(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text(BAD1, encoding="utf8")
    with pytest.raises(ValueError) as info:
        pubtator(path, on_error="skip")
    assert str(info.value) == f"{path}: no documents left: all 1 had a bad mention and were skipped (on_error='skip')"


def test_a_correct_copy_of_a_skipped_document_is_kept(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text(BAD1 + "\n" + DOC1, encoding="utf8")
    stats = ConvertStats()
    docs, messages = pubtator(path, stats=stats, on_error="skip")
    assert [[e.text for e in d.ents] for d in docs] == [["Lithium", "Renal failure"]]
    assert stats.skipped == {"documents with a bad mention (on_error=skip)": 1} and len(messages) == 1
