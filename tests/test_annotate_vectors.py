"""Precomputed entity vectors are memory-mapped when a pipeline is loaded
(shared by the processes of one host), may be float16, and give the links
the in-memory vectors give."""
import pickle

import numpy
import pytest
import spacy
import util
from spacy.training import Example
from thinc.api import fix_random_seed

from spacy_llm_ner.kb import EntityRecord, LinkerKB

LINKER = "transformer_entity_linker"
RECORDS = [
    EntityRecord("Q_MP", "Mercury", description="the smallest planet"),
    EntityRecord("Q_ME", "Mercury", description="a toxic liquid metal"),
    EntityRecord("Q_AS", "Aspirin", description="a drug for pain"),
]
DATA = [
    ("Mercury is the closest planet to the sun.", [(0, 7, "LOC")], "Q_MP"),
    ("Mercury is a toxic metal found in fish.", [(0, 7, "CHEM")], "Q_ME"),
    ("She took aspirin for the pain.", [(9, 16, "CHEM")], "Q_AS"),
]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def with_ents(nlp, text, ents):
    doc = nlp.make_doc(text)
    doc.ents = [doc.char_span(s, e, label=label) for s, e, label in ents]
    return doc


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    fix_random_seed(0)
    nlp = util.make_nlp("tok2vec", component=LINKER)
    examples = []
    for text, ents, kb_id in DATA:
        ref = with_ents(nlp, text, ents)
        for ent in ref.ents:
            for token in ent:
                token.ent_kb_id_ = kb_id
        examples.append(Example(nlp.make_doc(text), ref))
    nlp.get_pipe(LINKER).set_kb(LinkerKB.from_records(nlp.vocab, RECORDS))
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(10):
        nlp.update(examples, sgd=optimizer)
    nlp.get_pipe(LINKER).precompute_entities()
    path = tmp_path_factory.mktemp("vectors") / "model"
    nlp.to_disk(path)
    return nlp, path


def candidates(nlp):
    return [nlp(with_ents(nlp, text, ents)).ents[0]._.kb_candidates for text, ents, _ in DATA]


def test_loaded_vectors_are_memory_mapped_and_give_the_same_links(saved):
    nlp, path = saved
    loaded = spacy.load(path)
    encoder = loaded.get_pipe(LINKER).entity_encoder
    assert isinstance(encoder._table, numpy.memmap) and not encoder._table.flags.writeable
    assert set(encoder.cached_ids) == {r.id for r in RECORDS}
    for a, b in zip(candidates(nlp), candidates(loaded)):
        assert [e for e, _ in a] == [e for e, _ in b]
        assert [p for _, p in a] == pytest.approx([p for _, p in b], abs=1e-5)
    # Pickled (nlp.pipe(n_process=N) workers): the table travels as an array.
    again = pickle.loads(pickle.dumps(loaded.get_pipe(LINKER)))
    assert again.entity_encoder.vector("Q_AS") == pytest.approx(encoder.vector("Q_AS"))


def test_save_over_the_mapped_folder(saved):
    """Saving a loaded pipeline onto its own folder replaces the mapped file
    (written aside, renamed) instead of truncating it under the map."""
    _, path = saved
    loaded = spacy.load(path)
    before = loaded.get_pipe(LINKER).entity_encoder.vector("Q_ME").copy()
    loaded.to_disk(path)
    assert loaded.get_pipe(LINKER).entity_encoder.vector("Q_ME") == pytest.approx(before)
    assert spacy.load(path).get_pipe(LINKER).entity_encoder.vector("Q_ME") == pytest.approx(before)


def test_float16_table(saved, tmp_path):
    nlp, path = saved
    loaded = spacy.load(path)
    loaded.get_pipe(LINKER).entity_encoder.set_dtype("float16")
    loaded.to_disk(tmp_path / "half")
    half = spacy.load(tmp_path / "half")
    encoder = half.get_pipe(LINKER).entity_encoder
    assert encoder.dtype == "float16" and encoder.vector("Q_MP").dtype == numpy.float32
    assert (tmp_path / "half" / LINKER / "entity_vectors" / "vectors.npy").stat().st_size < (
        path / LINKER / "entity_vectors" / "vectors.npy"
    ).stat().st_size
    for a, b in zip(candidates(nlp), candidates(half)):
        assert [e for e, _ in a] == [e for e, _ in b]
        assert [p for _, p in a] == pytest.approx([p for _, p in b], abs=2e-2)
    with pytest.raises(ValueError, match="float32 or float16"):
        encoder.set_dtype("int8")


def test_added_entity_after_loading_is_encoded_and_saved(saved, tmp_path):
    _, path = saved
    loaded = spacy.load(path)
    linker = loaded.get_pipe(LINKER)
    linker.add_entities([EntityRecord("Q_PA", "Paracetamol", description="a drug for fever")])
    doc = loaded(with_ents(loaded, "She took paracetamol.", [(9, 20, "CHEM")]))
    assert "Q_PA" in [e for e, _ in doc.ents[0]._.kb_candidates]
    loaded.to_disk(tmp_path / "more")
    assert "Q_PA" in spacy.load(tmp_path / "more").get_pipe(LINKER).entity_encoder.cached_ids


def test_precompute_entities_cli_float16(saved, tmp_path):
    from typer.testing import CliRunner

    from spacy_llm_ner.cli import app

    _, path = saved
    out = tmp_path / "half"
    result = CliRunner().invoke(app, ["precompute-entities", str(path), str(out), "--dtype", "float16"])
    assert result.exit_code == 0, result.output
    encoder = spacy.load(out).get_pipe(LINKER).entity_encoder
    assert encoder._table.dtype == numpy.float16
    full = spacy.load(path).get_pipe(LINKER).entity_encoder
    assert encoder.vector("Q_AS") == pytest.approx(full.vector("Q_AS"), abs=1e-2)
    bad = CliRunner().invoke(app, ["precompute-entities", str(path), str(tmp_path / "x"), "--dtype", "int8"])
    assert bad.exit_code == 1 and "float32 or float16" in bad.output
