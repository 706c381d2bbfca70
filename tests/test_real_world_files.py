"""Real-world file faults (issue #23): each bad file in, the exact error or
the counted repair out."""
import gzip
import re
from pathlib import Path
from typing import List

import pytest
import spacy
from typer.testing import CliRunner

from spacy_llm_ner.cli import app
from spacy_llm_ner.corpora import ConvertStats, convert, read_conll, read_jsonl, read_pubtator
from spacy_llm_ner.kb import EntityRecord, KBFormatError, read_csv, read_ctd
from spacy_llm_ner.kb.mentions import add_mention_aliases
from spacy_llm_ner.kb import read_jsonl as read_kb_jsonl

CTD_HEADER = "# CTD test extract\n# Fields:\n# DiseaseName\tDiseaseID\tAltDiseaseIDs\tDefinition\tParentIDs\tTreeNumbers\tParentTreeNumbers\tSynonyms\tSlimMappings\n"
# The columns of one real CTD line (SlimMappings present).
CTD_FULL = ["Diabetes Mellitus, Type 2", "MESH:D003924", "DO:DOID:9352|OMIM:125853", "A subclass of diabetes.",
            "MESH:D003920", "C18.452.394.750.149/C12345|C19.246.300", "C18.452.394.750|C19.246",
            "NIDDM|Type 2 Diabetes", "Metabolic disease"]


def write_ctd(path: Path, rows: List[List[str]]) -> Path:
    path.write_text(CTD_HEADER + "".join("\t".join(r) + "\n" for r in rows), encoding="utf8")
    return path


def without(column: int) -> List[str]:
    """CTD_FULL with one column lost (8 fields: looks like a line without SlimMappings)."""
    return CTD_FULL[:column] + CTD_FULL[column + 1 :]


# -- 1. CTD line missing a middle column ------------------------------------------


def test_ctd_full_line_reads(tmp_path):
    rec = list(read_ctd(write_ctd(tmp_path / "ctd.tsv", [CTD_FULL, ["Root", "MESH:C", "", "", "", "C", "", "", ""]])))
    assert [r.id for r in rec] == ["MESH:D003924", "MESH:C"]
    assert rec[0].aliases == ["NIDDM", "Type 2 Diabetes"] and rec[0].alt_ids == ["DO:DOID:9352", "OMIM:125853"]


@pytest.mark.parametrize(
    "lost,field,message",
    [
        (0, "DiseaseName", "looks like an id, not a name ('MESH:D003924')"),
        (2, "AltDiseaseIDs", "not |-separated ids ('A subclass of diabetes.')"),
        (3, "Definition", "holds ids ('MESH:D003920')"),
        (4, "ParentIDs", "not |-separated ids ('C18.452.394.750.149/C12345|C19.246.300')"),
        (5, "ParentTreeNumbers", "not |-separated tree numbers like C14.907 ('NIDDM|Type 2 Diabetes')"),
    ],
)
def test_ctd_missing_middle_column(tmp_path, lost, field, message):
    path = write_ctd(tmp_path / "ctd.tsv", [CTD_FULL, without(lost)])
    with pytest.raises(KBFormatError) as info:
        list(read_ctd(path))
    assert str(info.value) == f"{path}, line 5, field '{field}': {message}; is a column missing?"


def test_ctd_missing_column_with_empty_neighbours(tmp_path):
    # AltDiseaseIDs and Definition both empty, then one of them lost: ParentIDs
    # land in Definition.
    row = CTD_FULL[:2] + ["", ""] + CTD_FULL[4:]
    path = write_ctd(tmp_path / "ctd.tsv", [row[:2] + row[3:]])
    with pytest.raises(KBFormatError, match=r"line 4, field 'Definition': holds ids \('MESH:D003920'\)"):
        list(read_ctd(path))


def test_ctd_bad_id_and_tree_skipped_and_counted(tmp_path):
    bad_id = ["Tumor", "D2"] + [""] * 7
    bad_tree = ["Tumor", "MESH:D2", "", "", "", "tree", "", "", ""]
    path = write_ctd(tmp_path / "ctd.tsv", [CTD_FULL, bad_id, bad_tree])
    with pytest.raises(KBFormatError, match=r"line 5, field 'DiseaseID': not an id like MESH:D003920"):
        list(read_ctd(path))
    with pytest.warns(UserWarning, match=r"skipped 2 bad record\(s\).*line 6, field 'TreeNumbers'"):
        assert len(list(read_ctd(path, on_error="skip"))) == 1


@pytest.mark.slow
def test_real_ctd_still_loads():
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "kb" / "CTD_diseases.tsv.gz"
    if not path.exists():
        pytest.skip("no shared CTD file")
    assert len(list(read_ctd(path))) == 11865


# -- 2. Empty input -----------------------------------------------------------


def flat(output: str) -> str:
    """CLI output without whitespace (the terminal may wrap a long message anywhere)."""
    return "".join(output.split())


@pytest.mark.parametrize("name,text", [("a.txt", ""), ("b.txt", " \n\n\t\n"), ("c.jsonl", "\n\n")])
def test_empty_corpus_is_an_error(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf8")
    with pytest.raises(ValueError) as info:
        convert(path, tmp_path / "out.spacy")
    assert str(info.value) == f"{path}: no documents (the file is empty or holds only blank lines)"
    assert not (tmp_path / "out.spacy").exists()


@pytest.mark.parametrize("fmt", ["pubtator", "conll", "jsonl"])
def test_empty_corpus_each_reader(tmp_path, fmt):
    path = tmp_path / "empty.txt"
    path.write_text("\n", encoding="utf8")
    nlp = spacy.blank("en")
    reader = {"pubtator": lambda: read_pubtator(path, nlp=nlp), "conll": lambda: read_conll(path, vocab=nlp.vocab),
              "jsonl": lambda: read_jsonl(path, nlp=nlp)}[fmt]
    with pytest.raises(ValueError, match="no documents"):
        list(reader())


def test_convert_cli_empty_exits_non_zero(tmp_path):
    path = tmp_path / "empty.PubTator.txt"
    path.write_text("\n \n", encoding="utf8")
    result = CliRunner().invoke(app, ["convert", str(path), str(tmp_path / "out.spacy")])
    assert result.exit_code == 1
    assert flat(f"{path}: no documents") in flat(result.output)


@pytest.mark.parametrize(
    "name,text,reader",
    [
        ("kb.jsonl", "", read_kb_jsonl),
        ("kb2.jsonl", "\n  \n", read_kb_jsonl),
        ("kb.csv", "id,name\n", read_csv),
        ("CTD_diseases.tsv", CTD_HEADER, read_ctd),
        ("CTD2.tsv", "", read_ctd),
    ],
)
def test_empty_kb_is_an_error(tmp_path, name, text, reader):
    path = tmp_path / name
    path.write_text(text, encoding="utf8")
    with pytest.raises(KBFormatError) as info:
        list(reader(path))
    assert str(info.value) == f"{path}: no entities (the file is empty or holds no valid record)"


def test_build_kb_cli_empty_exits_non_zero(tmp_path):
    path = tmp_path / "CTD_diseases.tsv"
    path.write_text(CTD_HEADER, encoding="utf8")
    result = CliRunner().invoke(app, ["build-kb", str(path), str(tmp_path / "kb")])
    assert result.exit_code == 1
    assert flat(f"{path}: no entities") in flat(result.output)
    assert not (tmp_path / "kb").exists()


# -- 3. File cut inside its last line -----------------------------------------------

CUT = "no final newline: the last line may be cut short (file truncated?)"
PUBTATOR = "1|t|Lithium toxicity.\n1|a|Renal failure was seen.\n1\t0\t7\tLithium\tChemical\tD008094\n"


def pubtator_docs(path: Path, **kwargs) -> list:
    return list(read_pubtator(path, nlp=spacy.blank("en"), **kwargs))


def test_pubtator_cut_last_line_warns(tmp_path):
    path = tmp_path / "cut.txt"
    path.write_text(PUBTATOR + "1\t18\t31\tRenal failure\tDisease\tD011", encoding="utf8")
    with pytest.warns(UserWarning) as record:
        docs = pubtator_docs(path)
    assert [str(w.message) for w in record] == [
        f"{path}, line 4: {CUT}; read as it is (strict=True or --strict makes this an error)"
    ]
    assert [e.kb_id_ for e in docs[0].ents] == ["D008094", "D011"]  # kept as it is: the warning is the point


def test_pubtator_cut_last_line_strict(tmp_path):
    path = tmp_path / "cut.txt"
    path.write_text("1|t|Lithium toxicity.\n1|a|Renal failure was se", encoding="utf8")  # abstract cut
    with pytest.raises(ValueError) as info:
        pubtator_docs(path, strict=True)
    assert str(info.value) == f"{path}, line 2, line: {CUT}"


def test_pubtator_whole_file_no_warning(tmp_path, recwarn):
    path = tmp_path / "ok.txt"
    path.write_text(PUBTATOR, encoding="utf8")
    assert len(pubtator_docs(path, strict=True)) == 1
    assert not [w for w in recwarn if CUT in str(w.message)]


def test_convert_cli_strict(tmp_path):
    path = tmp_path / "cut.PubTator.txt"
    path.write_text(PUBTATOR.rstrip("\n"), encoding="utf8")
    out = tmp_path / "out.spacy"
    result = CliRunner().invoke(app, ["convert", str(path), str(out)])
    assert result.exit_code == 0 and flat(f"{path}, line 3: no final newline") in flat(result.output)
    out.unlink()
    result = CliRunner().invoke(app, ["convert", str(path), str(out), "--strict"])
    assert result.exit_code == 1 and flat(f"{path}, line 3, line: {CUT}") in flat(result.output)
    assert not out.exists()


@pytest.mark.parametrize("gz", [False, True])
def test_kb_cut_last_line(tmp_path, gz):
    text = CTD_HEADER + "\t".join(CTD_FULL) + "\n" + "Tumor\tMESH:D011"
    data = text.encode("utf8")
    path = tmp_path / ("ctd.tsv.gz" if gz else "ctd.tsv")
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.warns(UserWarning, match=rf"^{re.escape(str(path))}, line 5: no final newline"):
        with pytest.raises(KBFormatError, match="expected 9 tab-separated columns"):
            list(read_ctd(path))
    with pytest.raises(KBFormatError) as info:
        list(read_ctd(path, strict=True))
    assert str(info.value) == f"{path}, line 5: {CUT}"


def test_kb_jsonl_cut_last_line_kept_with_warning(tmp_path):
    path = tmp_path / "kb.jsonl"
    path.write_text('{"id": "D1", "name": "Tumor"}\n{"id": "D011", "name": "Pain"}', encoding="utf8")
    with pytest.warns(UserWarning, match=r"line 2: no final newline"):
        assert [r.id for r in read_kb_jsonl(path)] == ["D1", "D011"]
    with pytest.raises(KBFormatError, match=r"kb.jsonl, line 2: no final newline"):
        list(read_kb_jsonl(path, strict=True))


def test_build_kb_cli_strict(tmp_path):
    path = tmp_path / "kb.csv"
    path.write_text("id,name\nD1,Tumor\nD011,Pa", encoding="utf8")
    result = CliRunner().invoke(app, ["build-kb", str(path), str(tmp_path / "kb")])
    assert result.exit_code == 0 and flat(f"{path}, line 3: no final newline") in flat(result.output)
    result = CliRunner().invoke(app, ["build-kb", str(path), str(tmp_path / "kb2"), "--strict"])
    assert result.exit_code == 1 and flat(f"{path}, line 3: {CUT}") in flat(result.output)
    assert not (tmp_path / "kb2").exists()


# -- 4. Duplicate PubTator documents ------------------------------------------------

TWO = "2|t|Fever.\n2|a|\n2\t0\t5\tFever\tDisease\tD005334\n"


def test_pubtator_duplicate_first_kept(tmp_path):
    path = tmp_path / "dup.txt"
    path.write_text(PUBTATOR + "\n" + TWO + "\n" + PUBTATOR.replace("toxicity", "poisoning"), encoding="utf8")
    stats = ConvertStats()
    with pytest.warns(UserWarning) as record:
        docs = pubtator_docs(path, stats=stats)
    assert [d.text for d in docs] == ["Lithium toxicity. Renal failure was seen.", "Fever. "]
    assert stats.skipped == {"duplicate documents (same PMID, first kept)": 1}
    assert [str(w.message) for w in record] == [
        f"{path}: 1 duplicate document(s) left out, the first of each kept: 1 (line 9, first on line 1)"
    ]


def test_pubtator_keep_duplicates(tmp_path):
    path = tmp_path / "dup.txt"
    path.write_text(PUBTATOR + PUBTATOR, encoding="utf8")  # no blank line between them either
    stats = ConvertStats()
    with pytest.warns(UserWarning, match=r"1 duplicate document\(s\) kept \(keep_duplicates\): 1 \(line 4"):
        docs = pubtator_docs(path, stats=stats, keep_duplicates=True)
    assert len(docs) == 2 and not stats.skipped


def test_convert_cli_duplicates(tmp_path):
    path = tmp_path / "dup.PubTator.txt"
    path.write_text(PUBTATOR + "\n" + PUBTATOR, encoding="utf8")
    result = CliRunner().invoke(app, ["convert", str(path), str(tmp_path / "a.spacy")])
    assert result.exit_code == 0
    assert "1 docs" in result.output and "Not kept: 1 duplicate documents (same PMID, first kept)" in result.output
    assert flat("1 (line 5, first on line 1)") in flat(result.output)
    result = CliRunner().invoke(app, ["convert", str(path), str(tmp_path / "b.spacy"), "--keep-duplicates"])
    assert result.exit_code == 0 and "2 docs" in result.output


# -- 5. Mention text with stray whitespace; "+" composite ids --------------------------


def test_pubtator_mention_stray_whitespace_repaired(tmp_path):
    path = tmp_path / "ws.txt"
    # Two trailing spaces in the mention column; then offsets that take in the space before "Renal".
    path.write_text(PUBTATOR.replace("\tLithium\t", "\tLithium  \t") + "1\t17\t31\tRenal failure\tDisease\tD051437\n",
                    encoding="utf8")
    stats = ConvertStats()
    docs = pubtator_docs(path, stats=stats)
    assert [(e.text, e.kb_id_) for e in docs[0].ents] == [("Lithium", "D008094"), ("Renal failure", "D051437")]
    assert stats.repaired == {"mentions with stray whitespace": 2}


def test_pubtator_mention_other_difference_still_an_error(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text(PUBTATOR.replace("\tLithium\t", "\tLithiu m\t"), encoding="utf8")
    with pytest.raises(ValueError, match=r"line 3, column 4 \(mention\): 'Lithiu m' does not match"):
        pubtator_docs(path)


def test_convert_cli_reports_whitespace_repairs(tmp_path):
    path = tmp_path / "ws.PubTator.txt"
    path.write_text(PUBTATOR.replace("\tLithium\t", "\t Lithium  \t"), encoding="utf8")
    result = CliRunner().invoke(app, ["convert", str(path), str(tmp_path / "out.spacy")])
    assert result.exit_code == 0 and "Repaired: 1 mentions with stray whitespace" in result.output


def test_plus_joined_ids_are_composite():
    records = [EntityRecord(id="D1", name="Breast Cancer"), EntityRecord(id="D2", name="Ovarian Cancer")]
    mentions = [("breast and ovarian cancer", "D1+D2"), ("breast or ovarian cancer", "D1|D2"), ("mamma cancer", "D1")]
    out, stats = add_mention_aliases(records, mentions)
    assert stats.composite == 2 and stats.added == 1 and not stats.unknown_ids
    assert out[0].aliases == ["mamma cancer"] and out[1].aliases == []


CTD_HEAD = (
    "# The Comparative Toxicogenomics Database (CTD) - http://ctdbase.org/\n"
    "# Fields:\n"
    "# DiseaseName\tDiseaseID\tAltDiseaseIDs\tDefinition\tParentIDs\tTreeNumbers\tParentTreeNumbers\tSynonyms\tSlimMappings\n"
    "#\n"
)
CTD_ROW = "Kidney Failure\tMESH:D051437\t\tLoss of kidney function.\tMESH:D007674\tC12.777.419.780\tC12.777.419\tRenal Failure\t\n"


@pytest.mark.parametrize("name", ["diseases.tsv", "vocabulary.txt", "diseases.tsv.gz"])
def test_renamed_ctd_file_is_detected_by_its_header(tmp_path, name):
    from spacy_llm_ner.kb.readers import read_records, resolve_format

    path = tmp_path / name
    data = (CTD_HEAD + CTD_ROW).encode("utf8")
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    assert resolve_format(path, "auto") == "ctd"
    records = list(read_records(path, strip_prefix="MESH:"))
    assert [(r.id, r.name, r.aliases) for r in records] == [("D051437", "Kidney Failure", ["Renal Failure"])]


def test_a_tsv_without_the_ctd_header_stays_a_tsv(tmp_path):
    from spacy_llm_ner.kb.readers import resolve_format

    path = tmp_path / "diseases.tsv"
    path.write_text("id\tname\nD1\tKidney Failure\n", encoding="utf8")
    assert resolve_format(path, "auto") == "tsv"


def _linked_docbin(path: Path) -> None:
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    doc = nlp("Renal failure followed lithium.")
    doc.ents = [doc.char_span(0, 13, label="DISEASE", kb_id="D051437"), doc.char_span(23, 30, label="Chemical", kb_id="D008094")]
    DocBin(docs=[doc], store_user_data=True).to_disk(path)


def test_build_kb_alias_label_matching_nothing_names_the_corpus_labels(tmp_path):
    kb = tmp_path / "kb.jsonl"
    kb.write_text('{"id": "D051437", "name": "Kidney Failure"}\n', encoding="utf8")
    _linked_docbin(tmp_path / "train.spacy")
    args = ["build-kb", str(kb), str(tmp_path / "out"), "--aliases-from", str(tmp_path / "train.spacy")]
    result = CliRunner().invoke(app, args + ["--alias-label", "Disease"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())  # wasabi wraps long lines
    assert "No linked entity labelled Disease" in out
    assert "0 aliases added" in out
    assert "DISEASE (1)" in out and "Chemical (1)" in out
    result = CliRunner().invoke(app, args + ["--alias-label", "DISEASE"])
    out = " ".join(result.output.split())
    assert "No linked entity labelled" not in out
    assert "1 added" in out


def test_build_kb_strips_several_prefixes(tmp_path):
    from spacy_llm_ner.kb import LinkerKB

    kb = tmp_path / "kb.jsonl"
    kb.write_text(
        '{"id": "MESH:D051437", "name": "Kidney Failure"}\n{"id": "OMIM:125853", "name": "Diabetes type 2"}\n',
        encoding="utf8",
    )
    args = ["build-kb", str(kb), str(tmp_path / "out"), "--strip-prefix", "MESH:", "--strip-prefix", "OMIM:"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    loaded = LinkerKB.load(tmp_path / "out", spacy.blank("en").vocab)
    assert sorted(loaded.entity_ids) == ["125853", "D051437"]
