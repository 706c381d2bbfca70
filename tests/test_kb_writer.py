"""`write_kb` (what `build-kb` runs, without spaCy) writes the folder that
`LinkerKB.from_records(Vocab(), records).to_disk(path)` writes, byte for byte."""
from pathlib import Path
from types import ModuleType

import pytest
from spacy.vocab import Vocab

from spacy_llm_ner.kb import EntityRecord, LinkerKB, read_records, write_kb

ASSETS = Path(__file__).parents[1] / "assets"


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "options",
    [{}, {"top_k": 3, "stages": ("exact", "ngram"), "min_ngram_score": 0.25, "use_doc_abbreviations": False},
     {"entity_vector_length": 4}],
)
def test_the_folder_is_linker_kbs(tmp_path, options):
    records = list(read_records(ASSETS / "demo_kb.jsonl"))
    store = write_kb(records, tmp_path / "written", **options)
    LinkerKB.from_records(Vocab(), records, **options).to_disk(tmp_path / "saved")
    assert len(store) == len(records)
    written, saved = _files(tmp_path / "written"), _files(tmp_path / "saved")
    assert list(written) == list(saved) and "meta.json" in written
    assert written == saved
    kb = LinkerKB.load(tmp_path / "written", Vocab())
    assert kb.candidates("hypertension")[0].entity_id == "DEMO:D0001"


def test_bad_records_raise_as_linker_kb_does(tmp_path):
    records = [EntityRecord(id="A", name="a"), EntityRecord(id="A", name="b")]
    with pytest.raises(ValueError) as from_linker:
        LinkerKB.from_records(Vocab(), records)
    with pytest.raises(ValueError) as from_writer:
        write_kb(records, tmp_path / "kb")
    assert str(from_writer.value) == str(from_linker.value)
    with pytest.raises(ValueError, match="stages"):
        write_kb(records[:1], tmp_path / "kb", stages=("nope",))


def test_every_public_name_of_the_lazy_package_resolves():
    import spacy_llm_ner.kb as kb
    from spacy_llm_ner.kb import loaders, readers

    for name in kb.__all__:
        assert getattr(kb, name) is not None, name
    # The function, not the submodule of the same name.
    assert not isinstance(kb.normalize, ModuleType) and kb.normalize("Renal Failure") == kb.normalize("renal failure")
    for name in ("read_records", "resolve_format", "KB_FORMATS", "read_jsonl"):
        assert getattr(loaders, name) is getattr(readers, name) is getattr(kb, name)
