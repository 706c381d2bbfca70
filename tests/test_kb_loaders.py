"""KB file readers: good files, every error path (file, line and field named),
CTD format (plain, gzip, truncated gzip), registered loaders."""
import gzip
import json
from pathlib import Path
from typing import List, Optional

import pytest
import spacy
from spacy.util import registry

from spacy_llm_ner.kb import EntityRecord, KBFormatError, LinkerKB, read_csv, read_ctd, read_jsonl

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

CTD_HEADER = """# The Comparative Toxicogenomics Database (CTD) - test extract
#
# Fields:
# DiseaseName\tDiseaseID\tAltDiseaseIDs\tDefinition\tParentIDs\tTreeNumbers\tParentTreeNumbers\tSynonyms\tSlimMappings
#
"""
CTD_ROWS = [
    ["Hypertension", "MESH:D006973", "DO:DOID:10763", "Persistently high arterial blood pressure.", "MESH:D014652",
     "C14.907.489", "C14.907", "Blood Pressure, High|High Blood Pressure", "Cardiovascular disease"],
    ["Diabetes Mellitus, Type 2", "MESH:D003924", "MESH:D003925|OMIM:125853", "", "MESH:D003920", "C18.452",
     "C18", "NIDDM|Type 2 Diabetes", "Metabolic disease"],
    ["Alzheimer Disease", "MESH:D000544", "", "", "", "", "", "Alzheimer's disease|Dementia, Senile", ""],
]


def ctd_text(rows: List[List[str]]) -> str:
    return CTD_HEADER + "".join("\t".join(r) + "\n" for r in rows)


def write(path: Path, text: str, *, gz: bool = False) -> Path:
    data = text.encode("utf8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def jsonl(*objs: object) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs)


def assert_names(err: KBFormatError, path: Path, line: int, field: Optional[str]) -> None:
    msg = str(err)
    assert str(path) in msg
    assert f"line {line}" in msg
    if field:
        assert f"field '{field}'" in msg
    assert isinstance(err, ValueError)


GOOD = {"id": "MESH:D1", "name": "Hypertension", "aliases": ["high blood pressure"], "description": "d",
        "type": "Disease", "prior": 0.3, "alias_priors": {"Hypertension": 0.7}, "alt_ids": ["MESH:D9"]}


# -- JSONL ------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_jsonl_good(tmp_path, gz):
    path = write(tmp_path / "kb.jsonl", jsonl(GOOD, "", {"id": "D2", "name": "Tumor"}), gz=gz)
    records = list(read_jsonl(path, strip_prefix="MESH:"))
    assert [r.id for r in records] == ["D1", "D2"]
    first = records[0]
    assert first.aliases == ["high blood pressure"] and first.alt_ids == ["D9"]
    assert first.prior == 0.3 and first.alias_priors == {"Hypertension": 0.7}
    assert records[1].aliases == [] and records[1].description == ""


def test_jsonl_prefix_list(tmp_path):
    path = write(tmp_path / "kb.jsonl", jsonl({"id": "OMIM:1", "name": "a"}, {"id": "MESH:2", "name": "b"}))
    assert [r.id for r in read_jsonl(path, id_prefixes_to_strip=["MESH:", "OMIM:"])] == ["1", "2"]


BAD_JSONL = [
    ("malformed", jsonl(GOOD) + '{"id": "x", "name": \n', 2, None),
    ("not-object", jsonl(GOOD, "[1, 2]"), 2, None),
    ("missing-id", jsonl(GOOD, {"name": "x"}), 2, "id"),
    ("missing-name", jsonl(GOOD, {"id": "x"}), 2, "name"),
    ("empty-id", jsonl(GOOD, {"id": " ", "name": "x"}), 2, "id"),
    ("int-id", jsonl(GOOD, {"id": 7, "name": "x"}), 2, "id"),
    ("duplicate", jsonl(GOOD, {"id": "D3", "name": "x"}, {"id": "MESH:D1", "name": "y"}), 3, "id"),
    ("aliases-string", jsonl({"id": "x", "name": "x", "aliases": "a|b"}), 1, "aliases"),
    ("aliases-int", jsonl({"id": "x", "name": "x", "aliases": ["a", 3]}), 1, "aliases"),
    ("prior-high", jsonl(GOOD, {"id": "x", "name": "x", "prior": 1.5}), 2, "prior"),
    ("prior-negative", jsonl({"id": "x", "name": "x", "prior": -0.1}), 1, "prior"),
    ("prior-string", jsonl({"id": "x", "name": "x", "prior": "high"}), 1, "prior"),
    ("alias-prior-range", jsonl({"id": "x", "name": "x", "alias_priors": {"x": 2}}), 1, "alias_priors"),
    ("alias-prior-sum", jsonl({"id": "x", "name": "x", "aliases": ["y"], "alias_priors": {"x": 0.7, "y": 0.6}}), 1,
     "alias_priors"),
    ("alias-prior-unknown", jsonl({"id": "x", "name": "x", "alias_priors": {"z": 0.5}}), 1, "alias_priors"),
    ("unknown-field", jsonl({"id": "x", "name": "x", "alias": ["y"]}), 1, "alias"),
    ("description-type", jsonl({"id": "x", "name": "x", "description": 5}), 1, "description"),
]


@pytest.mark.parametrize("case,text,line,field", BAD_JSONL, ids=[c[0] for c in BAD_JSONL])
def test_jsonl_errors(tmp_path, case, text, line, field):
    path = write(tmp_path / f"{case}.jsonl", text)
    with pytest.raises(KBFormatError) as info:
        list(read_jsonl(path, strip_prefix="MESH:"))
    assert_names(info.value, path, line, field)
    assert info.value.line == line


def test_jsonl_bad_encoding(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(jsonl(GOOD).encode("utf8") + '{"id": "x", "name": "Sjögren"}\n'.encode("latin-1"))
    with pytest.raises(KBFormatError, match="UTF-8") as info:
        list(read_jsonl(path))
    assert_names(info.value, path, 2, None)


def test_jsonl_skip_counts_and_warns(tmp_path):
    text = jsonl(GOOD, "{broken", {"id": "D2", "name": "b", "prior": 3}, {"id": "D4", "name": "d"})
    path = write(tmp_path / "kb.jsonl", text)
    with pytest.warns(UserWarning, match="skipped 2 bad record"):
        records = list(read_jsonl(path, on_error="skip"))
    assert [r.id for r in records] == ["MESH:D1", "D4"]
    with pytest.raises(ValueError, match="on_error"):
        list(read_jsonl(path, on_error="ignore"))


def test_unknown_fields_can_be_ignored(tmp_path):
    path = write(tmp_path / "kb.jsonl", jsonl({"id": "x", "name": "x", "url": "http://example.org"}))
    assert [r.id for r in read_jsonl(path, ignore_unknown_fields=True)] == ["x"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(read_jsonl(tmp_path / "nope.jsonl"))


# -- CSV / TSV -----------------------------------------------------------------


def test_csv_good(tmp_path):
    text = 'id,name,aliases,description,type,prior,alt_ids\nD1,Hypertension,"high BP|Blood Pressure, High",d,Disease,0.2,X1|X2\nD2,Tumor,,,,,\n'
    records = list(read_csv(write(tmp_path / "kb.csv", text)))
    assert records[0].aliases == ["high BP", "Blood Pressure, High"]
    assert records[0].prior == pytest.approx(0.2) and records[0].alt_ids == ["X1", "X2"]
    assert records[1].aliases == [] and records[1].prior is None


def test_tsv_good(tmp_path):
    text = "id\tname\taliases\nMESH:D1\tHypertension\thigh BP|HBP\n"
    records = list(read_csv(write(tmp_path / "kb.tsv", text, gz=True), delimiter="\t", strip_prefix="MESH:"))
    assert records[0].id == "D1" and records[0].aliases == ["high BP", "HBP"]


BAD_CSV = [
    ("no-name-column", "id,aliases\nD1,x\n", 1, "name"),
    ("unknown-column", "id,name,synonyms\nD1,x,y\n", 1, "synonyms"),
    ("field-count", "id,name,aliases\nD1,a,b\nD2,b\n", 3, None),
    ("quoting", 'id,name\nD1,a\nD2,"b"c\n', 3, None),
    ("bad-prior", "id,name,prior\nD1,a,0.1\nD2,b,lots\n", 3, "prior"),
    ("prior-range", "id,name,prior\nD1,a,7\n", 2, "prior"),
    ("duplicate", "id,name\nD1,a\nD2,b\nD1,c\n", 4, "id"),
    ("missing-id", "id,name\n,a\n", 2, "id"),
]


@pytest.mark.parametrize("case,text,line,field", BAD_CSV, ids=[c[0] for c in BAD_CSV])
def test_csv_errors(tmp_path, case, text, line, field):
    path = write(tmp_path / f"{case}.csv", text)
    with pytest.raises(KBFormatError) as info:
        list(read_csv(path))
    assert_names(info.value, path, line, field)


def test_csv_bad_encoding_and_skip_keeps_line_numbers(tmp_path):
    path = tmp_path / "kb.csv"
    path.write_bytes(b"id,name\nD1,a\nD2,\xff\xfe\nD3,c\nD3,d\n")
    with pytest.raises(KBFormatError, match="UTF-8") as info:
        list(read_csv(path))
    assert_names(info.value, path, 3, None)
    with pytest.warns(UserWarning, match="skipped 2") as caught:
        records = list(read_csv(path, on_error="skip"))
    assert [r.id for r in records] == ["D1", "D3"]
    assert "line 5" in str(caught[0].message)  # the duplicate, counted after the skipped line


def test_csv_empty_file(tmp_path):
    path = write(tmp_path / "empty.csv", "")
    with pytest.raises(KBFormatError, match="empty"):
        list(read_csv(path))


# -- CTD -------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_ctd_good(tmp_path, gz):
    path = write(tmp_path / ("ctd.tsv.gz" if gz else "ctd.tsv"), ctd_text(CTD_ROWS), gz=gz)
    records = list(read_ctd(path, strip_prefix="MESH:"))
    assert [r.id for r in records] == ["D006973", "D003924", "D000544"]
    hyper, diabetes, alzheimer = records
    assert hyper.aliases == ["Blood Pressure, High", "High Blood Pressure"]
    assert hyper.description.startswith("Persistently") and hyper.type == "Disease"
    assert hyper.alt_ids == ["DO:DOID:10763"]
    assert diabetes.alt_ids == ["D003925", "OMIM:125853"]  # a gold id may be an alternative id
    assert alzheimer.alt_ids == [] and alzheimer.aliases == ["Alzheimer's disease", "Dementia, Senile"]


def test_ctd_truncated_gzip(tmp_path):
    data = gzip.compress(ctd_text(CTD_ROWS * 1).encode("utf8") * 50)
    path = tmp_path / "truncated.tsv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(KBFormatError, match="truncated or corrupt gzip") as info:
        list(read_ctd(path, on_error="skip"))  # not skippable
    assert str(path) in str(info.value)


def test_ctd_corrupt_gzip(tmp_path):
    data = bytearray(gzip.compress(ctd_text(CTD_ROWS).encode("utf8")))
    data[20:40] = b"\x00" * 20
    path = tmp_path / "corrupt.tsv.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(KBFormatError, match="gzip") as info:
        list(read_ctd(path))
    assert str(path) in str(info.value)


def test_ctd_errors(tmp_path):
    rows = CTD_ROWS + [["Too", "few", "columns"]]
    path = write(tmp_path / "ctd.tsv", ctd_text(rows))
    with pytest.raises(KBFormatError, match="columns") as info:
        list(read_ctd(path))
    assert_names(info.value, path, 9, None)
    missing = [["", "MESH:D1"] + [""] * 7]
    path = write(tmp_path / "ctd2.tsv", ctd_text(missing))
    with pytest.raises(KBFormatError) as info:
        list(read_ctd(path))
    assert_names(info.value, path, 6, "DiseaseName")
    dup = CTD_ROWS + [CTD_ROWS[0]]
    path = write(tmp_path / "ctd3.tsv", ctd_text(dup))
    with pytest.raises(KBFormatError, match="duplicate id 'D006973' \\(first on line 6\\)") as info:
        list(read_ctd(path, strip_prefix="MESH:"))
    assert_names(info.value, path, 9, "id")


# -- registered loaders ----------------------------------------------------------


def test_registered_loaders(tmp_path):
    vocab = spacy.blank("en").vocab
    ctd = write(tmp_path / "ctd.tsv.gz", ctd_text(CTD_ROWS), gz=True)
    kb = registry.misc.get("spacy_llm_ner.load_kb_ctd.v1")(path=str(ctd))(vocab)
    assert isinstance(kb, LinkerKB) and len(kb) == 3 and "D006973" in kb
    js = write(tmp_path / "kb.jsonl", jsonl(GOOD))
    kb = registry.misc.get("spacy_llm_ner.load_kb_jsonl.v1")(path=str(js), strip_prefix="MESH:", top_k=3)(vocab)
    assert kb.entity("D1").alt_ids == ["D9"] and kb.config.top_k == 3
    tsv = write(tmp_path / "kb.tsv", "id\tname\nQ1\tEmerson\n")
    kb = registry.misc.get("spacy_llm_ner.load_kb_csv.v1")(path=str(tsv), delimiter="\t")(vocab)
    assert kb.entity_ids[0] == "Q1"
    kb.to_disk(tmp_path / "saved")
    again = registry.misc.get("spacy_llm_ner.load_kb_disk.v1")(path=str(tmp_path / "saved"))(vocab)
    assert list(again.entity_ids) == ["Q1"]


def test_per_format_loaders_pass_their_reader_options_on(tmp_path):
    """The per-format loaders are thin wrappers over one loading path; each
    of their reader options still reaches the reader."""
    vocab = spacy.blank("en").vocab
    js = write(tmp_path / "kb.jsonl", jsonl(GOOD, "{bad", {**GOOD, "id": "D2", "colour": "red"}))
    load = registry.misc.get("spacy_llm_ner.load_kb_jsonl.v1")
    with pytest.warns(UserWarning, match="skipped 1 bad record"):
        kb = load(path=str(js), id_prefixes_to_strip=["MESH:"], on_error="skip", ignore_unknown_fields=True)(vocab)
    assert list(kb.entity_ids) == ["D1", "D2"]
    semicolons = write(tmp_path / "kb.txt", "id;name;aliases\nQ1;Emerson;R. W. Emerson\n")
    kb = registry.misc.get("spacy_llm_ner.load_kb_csv.v1")(path=str(semicolons), delimiter=";")(vocab)
    assert kb.entity("Q1").aliases == ["R. W. Emerson"]
    ctd = write(tmp_path / "diseases.tsv", ctd_text(CTD_ROWS))
    kb = registry.misc.get("spacy_llm_ner.load_kb_ctd.v1")(path=str(ctd), entity_type="Condition", top_k=2)(vocab)
    assert kb.entity("D006973").type == "Condition" and kb.config.top_k == 2


def test_any_format_loader(tmp_path):
    """load_kb.v1: a LinkerKB folder, or a file whose format is told by its name."""
    vocab = spacy.blank("en").vocab
    load = registry.misc.get("spacy_llm_ner.load_kb.v1")
    ctd = write(tmp_path / "CTD_diseases.tsv.gz", ctd_text(CTD_ROWS), gz=True)
    kb = load(path=str(ctd), strip_prefix="MESH:")(vocab)
    assert len(kb) == 3 and "D006973" in kb
    kb = load(path=str(write(tmp_path / "kb.jsonl", jsonl(GOOD))), strip_prefix="MESH:", top_k=3)(vocab)
    assert kb.entity("D1").alt_ids == ["D9"] and kb.config.top_k == 3
    kb.to_disk(tmp_path / "folder")
    again = load(path=str(tmp_path / "folder"))(vocab)
    assert list(again.entity_ids) == list(kb.entity_ids) and again.config.top_k == 3
    kb = load(path=str(write(tmp_path / "kb.csv", "id,name\nQ1,Emerson\n")))(vocab)
    assert kb.entity_ids[0] == "Q1"
    # A file in another format than its name says: the error names file, line and field.
    bad = write(tmp_path / "kb2.tsv", "id,name\nQ1,Emerson\n")
    with pytest.raises(KBFormatError) as info:
        load(path=str(bad))(vocab)
    assert str(bad) in str(info.value)
    with pytest.raises(ValueError, match="Unknown KB format 'xml'"):
        load(path=str(bad), format="xml")(vocab)


def test_loader_resolves_from_config(tmp_path):
    from thinc.api import Config

    ctd = write(tmp_path / "ctd.tsv", ctd_text(CTD_ROWS))
    cfg = Config().from_str(
        f"""
        [kb_loader]
        @misc = "spacy_llm_ner.load_kb_ctd.v1"
        path = "{ctd}"
        id_prefixes_to_strip = ["OMIM:"]
        """
    )
    loader = registry.resolve(cfg)["kb_loader"]
    kb = loader(spacy.blank("en").vocab)
    assert kb.resolve_id("125853") == ["D003924"]


def test_record_all_names_and_alias_probabilities():
    rec = EntityRecord(id="x", name="A", aliases=["B", "A", "C", ""], alias_priors={"B": 0.5})
    assert rec.all_names() == ["A", "B", "C"]
    assert rec.alias_probabilities() == {"A": 0.25, "B": 0.5, "C": 0.25}


@pytest.mark.slow
def test_real_ctd_file():
    path = SHARED_DATA / "kb" / "CTD_diseases.tsv.gz"
    records = list(read_ctd(path, strip_prefix="MESH:"))
    assert len(records) == 11865
    assert len({a for r in records for a in r.all_names()}) == 77817
    kb = LinkerKB.from_records(spacy.blank("en").vocab, records)
    assert len(kb) == 11865
    assert kb.candidates("hypertension")[0].entity_id == "D006973"
    assert kb.entity("D003920").name == "Diabetes Mellitus"
