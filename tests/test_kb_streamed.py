"""A KB written one segment at a time (`write_kb(segment_size=...)`,
`build-kb --segment-size`), and merging that leaves sealed segments alone."""
import numpy as np
import pytest
from spacy.vocab import Vocab
from typer.testing import CliRunner

from spacy_llm_ner.cli import app
from spacy_llm_ner.kb import EntityRecord, KBFormatError, LinkerKB
from spacy_llm_ner.kb import store as store_module
from spacy_llm_ner.kb.writer import write_kb

WORDS = ["renal", "cardiac", "hepatic", "tumor", "fever", "syndrome", "acute", "chronic", "kidney", "carcinoma"]


def records(n, start=0):
    rng = np.random.default_rng(start)
    for i in range(start, start + n):
        words = [WORDS[j] for j in rng.choice(len(WORDS), size=3, replace=False)] + [f"x{i}"]
        yield EntityRecord(id=f"E{i}", name=" ".join(words), aliases=[f"ALIAS {i}"], prior=0.5)


def test_streamed_kb_has_its_segments_and_finds_what_one_segment_finds(tmp_path):
    write_kb(records(250), tmp_path / "streamed", segment_size=100)
    write_kb(records(250), tmp_path / "whole")
    streamed, whole = LinkerKB.load(tmp_path / "streamed", Vocab()), LinkerKB.load(tmp_path / "whole", Vocab())
    assert [len(s) for s in streamed._segments] == [100, 100, 50] and len(whole._segments) == 1
    assert list(streamed.entity_ids) == list(whole.entity_ids)
    queries = ["alias 7", "ALIAS 149", "Alias 249s", "renal tumor x180", "renal tumor x18O"]
    exact = ("exact", "normalized")
    assert [[c.entity_id for c in cs] for cs in streamed.candidates_batch(queries, stages=exact)] == [
        [c.entity_id for c in cs] for cs in whole.candidates_batch(queries, stages=exact)
    ]
    # A typo of an entity in the last segment, through the n-gram stage.
    assert "E180" in [c.entity_id for c in streamed.candidates("renal tumor x18O")]
    assert streamed.entity("E249").aliases == ["ALIAS 249"]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_repeated_id_across_segments_is_an_error(tmp_path, workers):
    twice = list(records(30)) + [EntityRecord(id="E3", name="again")]
    with pytest.raises(KBFormatError, match="E3"):
        write_kb(twice, tmp_path / "kb", segment_size=10, workers=workers)
    assert not (tmp_path / "kb" / "meta.json").exists()  # no half KB that loads


def test_an_invalid_record_in_a_worker_is_an_error(tmp_path):
    bad = list(records(30)) + [EntityRecord(id="E99", name="x", prior=7.0)]
    with pytest.raises(KBFormatError, match="prior"):
        write_kb(bad, tmp_path / "kb", segment_size=10, workers=2)
    assert not (tmp_path / "kb" / "meta.json").exists()


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_segments_built_in_workers_are_the_same_files(tmp_path):
    write_kb(records(250), tmp_path / "one", segment_size=60)
    write_kb(records(250), tmp_path / "two", segment_size=60, workers=2)
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert len(one) > 50 and one.keys() == two.keys()
    assert [k for k in one if one[k] != two[k]] == []


def test_adding_entities_leaves_sealed_segments_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "SEALED_SIZE", 50)
    write_kb(records(200), tmp_path / "kb", segment_size=50)
    kb = LinkerKB.load(tmp_path / "kb", Vocab())
    sealed = list(kb._segments)
    for k in range(store_module.MAX_EXTRA_SEGMENTS + 1):
        kb.add_entities(records(3, start=1000 + 10 * k))
    assert kb._segments[:4] == sealed  # the same objects: not rebuilt
    assert len(kb._segments) == 5 and len(kb._segments[4]) == 3 * (store_module.MAX_EXTRA_SEGMENTS + 1)
    assert [c.entity_id for c in kb.candidates("alias 1041", stages=("exact", "normalized"))] == ["E1041"]


def test_build_kb_segment_size(tmp_path):
    path = tmp_path / "kb.jsonl"
    path.write_text("".join(f'{{"id": "E{i}", "name": "name {i}"}}\n' for i in range(25)), encoding="utf8")
    result = CliRunner().invoke(app, ["build-kb", str(path), str(tmp_path / "kb"), "--segment-size", "10"])
    assert result.exit_code == 0, result.output
    kb = LinkerKB.load(tmp_path / "kb", Vocab())
    assert [len(s) for s in kb._segments] == [10, 10, 5] and kb.candidates("name 24")[0].entity_id == "E24"
