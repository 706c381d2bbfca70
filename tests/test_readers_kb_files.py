"""KB files as they come (issue #23): ids with stray whitespace are stripped
and counted; a CSV without a header reads with explicit columns, and without
them fails naming the file, the first line and the fix."""
import warnings
from pathlib import Path

import pytest
import spacy
from typer.testing import CliRunner

from spacy_llm_ner.cli import app
from spacy_llm_ner.kb import KBFormatError, LinkerKB, read_csv, read_ctd
from spacy_llm_ner.kb import read_jsonl as read_kb_jsonl
from spacy_llm_ner.kb.loaders import make_csv_kb_loader, make_kb_loader
from spacy_llm_ner.kb.readers import read_records

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CTD_HEADER = "# Fields:\n# DiseaseName\tDiseaseID\tAltDiseaseIDs\tDefinition\tParentIDs\tTreeNumbers\tParentTreeNumbers\tSynonyms\tSlimMappings\n"


def flat(output: str) -> str:
    """CLI output without whitespace (the terminal may wrap a long message anywhere)."""
    return "".join(output.split())


def read_warned(reader, path, **kwargs):
    """The records and the warning messages of one read."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = list(reader(path, **kwargs))
    return records, [str(w.message) for w in caught]


# -- Ids with stray whitespace -----------------------------------------------------


def test_jsonl_ids_with_whitespace_stripped_and_counted(tmp_path):
    path = tmp_path / "kb.jsonl"
    path.write_text(
        '{"id": " D012345 ", "name": "Tumor", "alt_ids": ["OMIM:1\\t", "OMIM:2"]}\n'
        '{"id": "MESH:D2\\t", "name": "Pain"}\n{"id": "D3", "name": "Fever"}\n',
        encoding="utf8",
    )
    records, messages = read_warned(read_kb_jsonl, path, strip_prefix="MESH:")
    assert [(r.id, r.alt_ids) for r in records] == [("D012345", ["OMIM:1", "OMIM:2"]), ("D2", []), ("D3", [])]
    assert messages == [f"{path}: stripped stray whitespace around 3 id(s) (first: line 1, ' D012345 ')"]


def test_csv_and_ctd_ids_with_whitespace_counted(tmp_path):
    csv_path = tmp_path / "kb.csv"
    csv_path.write_text('id,name,alt_ids\n" D1 ",Tumor,X:1\nD2,Pain,\n', encoding="utf8")
    records, messages = read_warned(read_csv, csv_path)
    assert [r.id for r in records] == ["D1", "D2"]
    assert messages == [f"{csv_path}: stripped stray whitespace around 1 id(s) (first: line 2, ' D1 ')"]
    ctd_path = tmp_path / "ctd.tsv"
    ctd_path.write_text(CTD_HEADER + "Tumor\tMESH:D1 \tOMIM:1| OMIM:2\t\t\t\t\t\t\n", encoding="utf8")
    records, messages = read_warned(read_ctd, ctd_path, strip_prefix="MESH:")
    assert [(r.id, r.alt_ids) for r in records] == [("D1", ["OMIM:1", "OMIM:2"])]
    assert messages == [f"{ctd_path}: stripped stray whitespace around 2 id(s) (first: line 3, 'MESH:D1 ')"]


def test_clean_ids_give_no_warning(tmp_path):
    path = tmp_path / "kb.csv"
    path.write_text("id,name,alt_ids\nD1,Tumor,X:1|X:2\n", encoding="utf8")
    assert read_warned(read_csv, path)[1] == []


def test_ids_equal_after_stripping_are_duplicates(tmp_path):
    path = tmp_path / "kb.jsonl"
    path.write_text('{"id": "D1", "name": "Tumor"}\n{"id": "D1 ", "name": "Pain"}\n', encoding="utf8")
    with pytest.raises(KBFormatError) as info:
        read_warned(read_kb_jsonl, path)
    assert str(info.value) == f"{path}, line 2, field 'id': duplicate id 'D1' (first on line 1)"


def test_build_kb_reports_stripped_ids(tmp_path):
    path = tmp_path / "kb.jsonl"
    path.write_text('{"id": "D1 ", "name": "Tumor"}\n', encoding="utf8")
    result = CliRunner().invoke(app, ["build-kb", str(path), str(tmp_path / "kb")])
    assert result.exit_code == 0, result.output
    assert flat(f"{path}: stripped stray whitespace around 1 id(s) (first: line 1, 'D1 ')") in flat(result.output)
    assert list(LinkerKB.load(tmp_path / "kb", spacy.blank("en").vocab).entity_ids) == ["D1"]


# -- CSV without a header -----------------------------------------------------------

HEADERLESS = (
    '"Q312545","Roy Stanley Emerson","Australian tennis player"\n'
    '"Q48226","Ralph Waldo Emerson","American philosopher, essayist, and poet"\n'
)


def test_headerless_csv_is_an_error_naming_line_and_fix(tmp_path):
    path = tmp_path / "entities.csv"
    path.write_text(HEADERLESS, encoding="utf8")
    with pytest.raises(KBFormatError) as info:
        list(read_csv(path))
    first = '"Q312545","Roy Stanley Emerson","Australian tennis player"'
    assert str(info.value) == (
        f"{path}, line 1: no header row: the first line {first!r} names none of the columns "
        "['id', 'name', 'aliases', 'description', 'type', 'prior', 'alt_ids']; for a file without a header "
        "give its columns in order, e.g. --columns id,name,description "
        "(API and configs: columns=['id', 'name', 'description'])"
    )


def test_headerless_csv_with_columns(tmp_path):
    path = tmp_path / "entities.csv"
    path.write_text(HEADERLESS, encoding="utf8")
    records = list(read_csv(path, columns=["id", "name", "description"]))
    assert [(r.id, r.name, r.description) for r in records] == [
        ("Q312545", "Roy Stanley Emerson", "Australian tennis player"),
        ("Q48226", "Ralph Waldo Emerson", "American philosopher, essayist, and poet"),
    ]
    assert [r.id for r in read_records(path, columns=["id", "name", "description"])] == ["Q312545", "Q48226"]


def test_headerless_row_of_wrong_width_names_the_columns(tmp_path):
    path = tmp_path / "entities.csv"
    path.write_text(HEADERLESS + '"Q1","Someone"\n', encoding="utf8")
    with pytest.raises(KBFormatError) as info:
        list(read_csv(path, columns=["id", "name", "description"]))
    assert str(info.value) == f"{path}, line 3: expected 3 fields (id, name, description), got 2"


def test_columns_on_a_file_with_a_header_is_an_error(tmp_path):
    path = tmp_path / "kb.csv"
    path.write_text("id,name\nD1,Tumor\n", encoding="utf8")
    with pytest.raises(KBFormatError, match=r"kb.csv, line 1: the file has a header row \(\['id', 'name'\]\) but columns were given"):
        list(read_csv(path, columns=["id", "name"]))


@pytest.mark.parametrize(
    "columns,message",
    [
        (["name", "description"], "columns lacks column 'id'"),
        (["id", "name", "descr"], "unknown column(s) ['descr']"),
        (["id", "name", "id"], "column(s) ['id'] given twice"),
    ],
)
def test_bad_columns(tmp_path, columns, message):
    path = tmp_path / "entities.csv"
    path.write_text(HEADERLESS, encoding="utf8")
    with pytest.raises(KBFormatError) as info:
        list(read_csv(path, columns=columns))
    assert message in str(info.value)


def test_csv_loaders_take_columns(tmp_path):
    path = tmp_path / "entities.csv"
    path.write_text(HEADERLESS, encoding="utf8")
    vocab = spacy.blank("en").vocab
    kb = make_csv_kb_loader(path=str(path), columns=["id", "name", "description"])(vocab)
    assert sorted(kb.entity_ids) == ["Q312545", "Q48226"]
    kb = make_kb_loader(path=str(path), columns=["id", "name", "description"])(vocab)
    assert len(kb) == 2
    with pytest.raises(KBFormatError, match="no header row"):
        make_csv_kb_loader(path=str(path))(vocab)


def test_build_kb_columns(tmp_path):
    path = tmp_path / "entities.csv"
    path.write_text(HEADERLESS, encoding="utf8")
    result = CliRunner().invoke(app, ["build-kb", str(path), str(tmp_path / "a")])
    assert result.exit_code == 1 and flat("--columns id,name,description") in flat(result.output)
    result = CliRunner().invoke(app, ["build-kb", str(path), str(tmp_path / "b"), "--columns", "id,name,description"])
    assert result.exit_code == 0, result.output
    assert "2 entities" in result.output


def test_build_kb_columns_only_for_csv(tmp_path):
    path = tmp_path / "kb.jsonl"
    path.write_text('{"id": "D1", "name": "Tumor"}\n', encoding="utf8")
    result = CliRunner().invoke(app, ["build-kb", str(path), str(tmp_path / "kb"), "--columns", "id,name"])
    assert result.exit_code == 1
    assert flat("--columns applies to CSV and TSV files only (this one reads as jsonl; --format csv or --format tsv if it is one)") in flat(result.output)


def test_real_headerless_emerson_entities():
    path = SHARED_DATA / "nel_emerson" / "entities.csv"
    if not path.exists():
        pytest.skip("no shared nel_emerson data")
    with pytest.raises(KBFormatError, match="no header row"):
        list(read_csv(path))
    records = list(read_csv(path, columns=["id", "name", "description"]))
    assert {r.id for r in records} >= {"Q312545", "Q48226", "Q215952"}
    assert all(r.id.startswith("Q") and r.name and r.description for r in records)


def test_capitalised_header_reads(tmp_path):
    path = tmp_path / "kb.csv"
    path.write_text("ID,Name,Description\nQ1,Roy Emerson,tennis player\n", encoding="utf8")
    assert [(r.id, r.name, r.description) for r in read_csv(path)] == [("Q1", "Roy Emerson", "tennis player")]
