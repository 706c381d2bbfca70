"""Hostile knowledge-base files and folders: every format read through the
same paths (byte-order marks, latin-1 bytes, truncated gzip, pathological
JSON), saved LinkerKB folders that are missing or damaged, and the alias
priors the KB derives from any valid records. Errors must be a ValueError
naming the file (and line and field where there is one), never a stray
KeyError or RuntimeError from deep inside a reader. What test_kb_loaders.py
already covers per format is not repeated here."""
import gzip
import json
import math
import shutil
from pathlib import Path

import pytest
import spacy
from hypothesis import given, settings, strategies as st
from spacy.util import registry

from spacy_llm_ner.kb import EntityRecord, KBFormatError, LinkerKB, read_jsonl
from spacy_llm_ner.kb.loaders import read_records

CTD_LINE = "Sj\u00f6gren Syndrome\tMESH:D012859\t\tAn autoimmune disease.\t\t\t\tSicca Syndrome\t\n"
# One file per format, its first entity "Sjögren Syndrome" (id D012859),
# then a second entity, so that line 2 exists too.
FILES = {
    "jsonl": (
        "kb.jsonl",
        json.dumps({"id": "D012859", "name": "Sj\u00f6gren Syndrome"}, ensure_ascii=False) + "\n"
        + json.dumps({"id": "D2", "name": "Tumor"}) + "\n",
    ),
    "csv": ("kb.csv", "id,name\nD012859,Sj\u00f6gren Syndrome\nD2,Tumor\n"),
    "tsv": ("kb.tsv", "id\tname\nD012859\tSj\u00f6gren Syndrome\nD2\tTumor\n"),
    "ctd": ("CTD_diseases.tsv", CTD_LINE + "Tumor\tMESH:D2\t\t\t\t\t\t\t\n"),
}
FORMATS = sorted(FILES)


def _write(path: Path, data: bytes, *, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _read(path: Path, fmt: str) -> list:
    return list(read_records(path, fmt=fmt, strip_prefix="MESH:"))


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("fmt", FORMATS)
def test_utf8_byte_order_mark_is_not_data(tmp_path, fmt, gz):
    """Excel and Notepad start UTF-8 files with a BOM. It must neither break
    the header / first JSON line nor end up in the first entity's name."""
    name, text = FILES[fmt]
    path = _write(tmp_path / (name + (".gz" if gz else "")), b"\xef\xbb\xbf" + text.encode("utf8"), gz=gz)
    records = _read(path, fmt)
    assert [(r.id, r.name) for r in records] == [("D012859", "Sj\u00f6gren Syndrome"), ("D2", "Tumor")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_latin1_bytes_in_a_utf8_file(tmp_path, fmt):
    name, text = FILES[fmt]
    lines = text.splitlines(keepends=True)
    bad_line = 2 if fmt in ("csv", "tsv") else 1  # the Sjögren line (after the header)
    data = b"".join(
        line.encode("latin-1" if i + 1 == bad_line else "utf8") for i, line in enumerate(lines)
    )
    path = _write(tmp_path / name, data)
    with pytest.raises(KBFormatError, match="not valid UTF-8") as info:
        _read(path, fmt)
    assert str(path) in str(info.value) and f"line {bad_line}" in str(info.value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_gzip_in_every_format(tmp_path, fmt):
    name, text = FILES[fmt]
    lines = text.splitlines(keepends=True)
    header = lines[0] if fmt in ("csv", "tsv") else ""
    body = "".join(lines[-1].replace("D2", f"X{i}") for i in range(3000))  # distinct ids
    data = gzip.compress((header + body).encode("utf8"))
    path = _write(tmp_path / (name + ".gz"), data[: len(data) // 2])
    with pytest.raises(KBFormatError, match="truncated or corrupt gzip") as info:
        _read(path, fmt)
    assert str(path) in str(info.value) and "line" in str(info.value)


def test_deeply_nested_json_is_a_format_error(tmp_path):
    path = _write(tmp_path / "kb.jsonl", (json.dumps({"id": "D1", "name": "a"}) + "\n" + "[" * 100_000 + "\n").encode())
    with pytest.raises(KBFormatError, match="malformed JSON") as info:
        list(read_jsonl(path))
    assert info.value.line == 2 and str(path) in str(info.value)


@pytest.mark.parametrize(
    "fmt,text,field",
    [
        ("jsonl", '{"id": "D1", "name": "a", "prior": NaN}\n', "prior"),
        ("jsonl", '{"id": "D1", "name": "a", "prior": Infinity}\n', "prior"),
        ("jsonl", '{"id": "D1", "name": "a", "alias_priors": {"a": NaN}}\n', "alias_priors"),
        ("jsonl", '{"id": "D1", "name": "a", "aliases": ["b"], "alias_priors": {"a": 0.5, "b": 0.51}}\n',
         "alias_priors"),
        ("csv", "id,name,prior\nD1,a,nan\n", "prior"),
        ("csv", "id,name,prior\nD1,a,-inf\n", "prior"),
    ],
)
def test_non_finite_and_over_one_priors(tmp_path, fmt, text, field):
    path = _write(tmp_path / f"kb.{fmt}", text.encode())
    with pytest.raises(KBFormatError) as info:
        _read(path, fmt)
    assert info.value.field == field and str(path) in str(info.value)


def test_errors_reach_initialize_from_a_kb_loader(tmp_path):
    """A bad line surfaces through the registered loader unchanged (the
    pipeline's initialize calls it): file, line and field, not a traceback
    from inside LinkerKB."""
    path = _write(tmp_path / "kb.csv", b"id,name\nD1,a\nD1,b\n")
    loader = registry.misc.get("spacy_llm_ner.load_kb.v1")(path=str(path))
    with pytest.raises(KBFormatError, match="duplicate id 'D1'") as info:
        loader(spacy.blank("en").vocab)
    assert (info.value.line, info.value.field) == (3, "id")


# -- saved LinkerKB folders ------------------------------------------------------


def _damage(folder: Path, case: str) -> None:
    seg = folder / "segments" / "0"
    if case == "missing-folder":
        shutil.rmtree(folder)
    elif case == "empty-folder":
        shutil.rmtree(folder)
        folder.mkdir()
    elif case == "broken-meta":
        (folder / "meta.json").write_text("{not json", encoding="utf8")
    elif case == "future-format":
        (folder / "meta.json").write_text('{"format": 99}', encoding="utf8")
    elif case == "missing-segment":
        shutil.rmtree(seg)
    elif case == "missing-array":
        (seg / "alias_ent.npy").unlink()
    elif case == "truncated-array":
        (seg / "alias_ent.npy").write_bytes((seg / "alias_ent.npy").read_bytes()[:20])
    elif case == "garbage-trie":
        (seg / "aliases.marisa").write_bytes(b"\x07" * 64)
    elif case == "empty-trie":
        (seg / "ids.marisa").write_bytes(b"")
    elif case == "segment-meta-list":
        (seg / "meta.json").write_text("[]", encoding="utf8")
    else:
        raise AssertionError(case)


DAMAGE = ["missing-folder", "empty-folder", "broken-meta", "future-format", "missing-segment", "missing-array",
          "truncated-array", "garbage-trie", "empty-trie", "segment-meta-list"]


@pytest.mark.parametrize("loader", ["spacy_llm_ner.load_kb_disk.v1", "spacy_llm_ner.load_kb.v1"])
@pytest.mark.parametrize("case", DAMAGE)
def test_damaged_kb_folder_is_one_clear_error(tmp_path, case, loader):
    vocab = spacy.blank("en").vocab
    folder = tmp_path / "kb"
    LinkerKB.from_records(vocab, [EntityRecord("D1", "aspirin", aliases=["ASA"]), EntityRecord("D2", "caffeine")]).to_disk(folder)
    _damage(folder, case)
    # load_kb.v1 takes files too, so for a path that is not there at all it
    # says "file not found" (an IOError); everything else is a ValueError.
    expected = FileNotFoundError if (case, loader) == ("missing-folder", "spacy_llm_ner.load_kb.v1") else KBFormatError
    with pytest.raises(expected) as info:
        registry.misc.get(loader)(path=str(folder))(vocab)
    assert str(folder) in str(info.value)
    if expected is KBFormatError:
        assert "LinkerKB" in str(info.value)  # says what was expected there


def test_a_kb_file_given_to_the_folder_loader_names_load_kb(tmp_path):
    path = _write(tmp_path / "kb.jsonl", b'{"id": "D1", "name": "a"}\n')
    with pytest.raises(KBFormatError, match="spacy_llm_ner.load_kb.v1 reads KB files") as info:
        registry.misc.get("spacy_llm_ner.load_kb_disk.v1")(path=str(path))(spacy.blank("en").vocab)
    assert str(path) in str(info.value)
    assert len(registry.misc.get("spacy_llm_ner.load_kb.v1")(path=str(path))(spacy.blank("en").vocab)) == 1


# -- priors the KB derives -----------------------------------------------------------

NAMES = st.sampled_from(["cold", "Cold", "COLD", "flu", "influenza", "the flu", "CKD", "ckd", "Tumor", "tumors"])


@st.composite
def _records(draw):
    records = []
    for i in range(draw(st.integers(1, 6))):
        names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
        listed = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
        weights = [draw(st.floats(0.0, 1.0)) for _ in listed]
        total = sum(weights)
        alias_priors = {a: w / total for a, w in zip(listed, weights)} if total > 1.0 else dict(zip(listed, weights))
        alias_priors = {a: min(p, 1.0) * (1 - 1e-9) for a, p in alias_priors.items()}
        prior = draw(st.none() | st.floats(0.0, 1.0))
        records.append(EntityRecord(f"E{i}", names[0], aliases=names[1:], prior=prior, alias_priors=alias_priors))
    return records


@settings(max_examples=40, deadline=None)
@given(records=_records())
def test_alias_priors_are_a_distribution_per_alias(records):
    """However the records' priors are set (within their own rules), every
    alias's P(entity | alias) is in [0, 1] and sums to at most 1, in the KB
    and after a bytes round trip."""
    vocab = spacy.blank("en").vocab
    kb = LinkerKB.from_records(vocab, records)
    again = LinkerKB(vocab).from_bytes(kb.to_bytes())
    for store in (kb, again):
        for alias in store.get_alias_strings():
            priors = [c.prior_prob for c in store.get_alias_candidates(alias)]
            assert priors, alias
            assert all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in priors), (alias, priors)
            assert sum(priors) <= 1.0 + 1e-6, (alias, priors)
