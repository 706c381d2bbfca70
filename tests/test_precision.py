"""bfloat16 prediction of the transformer (`quantize = "bf16"`,
`python -m spacy_llm_ner quantize --method bf16`)."""
import pickle
import warnings
from pathlib import Path

import pytest
import spacy
import torch
from typer.testing import CliRunner

from conftest import TRAIN_DATA
from util import ents, overfitted_pipeline

from spacy_llm_ner.cli import app
from spacy_llm_ner.ml import precision
from spacy_llm_ner.ml.quantize import float_linears, quantize_transformer, quantized_linears
from spacy_llm_ner.ml.rewrite import V3, quantize_pipeline

TEXTS = [text for text, _ in TRAIN_DATA]


def torch_model(nlp: spacy.Language) -> torch.nn.Module:
    return nlp.get_pipe("transformer").model.layers[0].shims[0]._model


def hidden_states(nlp: spacy.Language) -> list:
    """The transformer's output per doc (the arrays the NER head reads)."""
    return [doc._.trf_data.model_output.last_hidden_state.copy() for doc in nlp.pipe(TEXTS, batch_size=2)]


def scored_ents(nlp: spacy.Language) -> list:
    return [(ents(doc), list(doc.spans["transformer_ner"].attrs["scores"])) for doc in nlp.pipe(TEXTS, batch_size=2)]


@pytest.fixture(scope="module")
def fp32_dir(tiny_bert_dir, tmp_path_factory) -> Path:
    return overfitted_pipeline(tiny_bert_dir, TRAIN_DATA, tmp_path_factory.mktemp("fp32") / "model", steps=60)


@pytest.fixture(scope="module")
def bf16_dir(fp32_dir, tmp_path_factory) -> Path:
    nlp = spacy.load(fp32_dir)
    assert quantize_pipeline(nlp, method="bf16") == ["transformer"]
    path = tmp_path_factory.mktemp("bf16") / "model"
    nlp.to_disk(path)
    return path


@pytest.fixture
def native(monkeypatch):
    """Run as on a CPU with AMX whatever this one has: torch emulates bf16
    where the hardware lacks it, so the numbers are the same, only slower."""
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: True)


def test_config_and_weights(fp32_dir, bf16_dir):
    nlp = spacy.load(bf16_dir)
    block = nlp.get_pipe_config("transformer")["model"]
    assert block["@architectures"] == V3 and block["quantize"] == "bf16"
    model, fp32 = torch_model(nlp), torch_model(spacy.load(fp32_dir))
    # Weights stay fp32 Linears, equal to the trained ones.
    assert float_linears(model) and not quantized_linears(model)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fp32.state_dict().values()))


def test_predicts_in_bf16_close_to_fp32(fp32_dir, bf16_dir, native):
    fp32, bf16 = spacy.load(fp32_dir), spacy.load(bf16_dir)
    ref, low = hidden_states(fp32), hidden_states(bf16)
    assert all(a.dtype == b.dtype == "float32" and a.shape == b.shape for a, b in zip(ref, low))
    # bf16 rounding is visible (so it did run in bf16) and small.
    assert any(float(abs(a - b).max()) > 1e-4 for a, b in zip(ref, low))
    assert all(float(abs(a - b).max()) < 0.25 for a, b in zip(ref, low))
    for (text, gold), (ents32, scores32), (ents16, scores16) in zip(TRAIN_DATA, scored_ents(fp32), scored_ents(bf16)):
        assert ents32 == gold and ents16 == ents32, text
        assert max(abs(a - b) for a, b in zip(scores32, scores16)) < 0.1


def test_pipe_equals_call_and_pickles(bf16_dir, native):
    nlp = spacy.load(bf16_dir)
    assert [ents(nlp(text)) for text in TEXTS] == [ents(doc) for doc in nlp.pipe(TEXTS, batch_size=3)]
    assert scored_ents(pickle.loads(pickle.dumps(nlp))) == scored_ents(nlp)


def test_without_native_bf16_predicts_fp32_and_warns(fp32_dir, bf16_dir, monkeypatch):
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: False)
    monkeypatch.setitem(precision._WARNED, "cpu", False)
    nlp = spacy.load(bf16_dir)
    with pytest.warns(UserWarning, match="no native bfloat16"):
        low = hidden_states(nlp)
    ref = hidden_states(spacy.load(fp32_dir))
    assert all(float(abs(a - b).max()) < 1e-5 for a, b in zip(ref, low))


def test_isa_cap_below_amx_is_not_native(monkeypatch):
    monkeypatch.setenv(precision.ISA_VARIABLE, "AVX2")
    assert precision.native_bf16_cpu() is False


def test_n_process_2(bf16_dir):
    nlp = spacy.load(bf16_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [ents(doc) for doc in nlp.pipe(TEXTS, n_process=2, batch_size=2)] == [ents(nlp(t)) for t in TEXTS]


def test_training_runs_in_fp32(bf16_dir, native):
    # Only prediction is cast: a pipeline with quantize = "bf16" keeps training.
    from util import examples

    nlp = spacy.load(bf16_dir)
    losses = {}
    nlp.update(examples(nlp, TRAIN_DATA), losses=losses, sgd=nlp.resume_training())
    assert losses["transformer_ner"] >= 0 and torch_model(nlp).encoder.layer[0].attention.self.query.weight.dtype == torch.float32


def test_cli(fp32_dir, tmp_path):
    out = tmp_path / "bf16"
    result = CliRunner().invoke(app, ["quantize", str(fp32_dir), str(out), "--method", "bf16"])
    assert result.exit_code == 0, result.output
    assert spacy.load(out).get_pipe_config("transformer")["model"]["quantize"] == "bf16"


def test_refusals(tiny_bert_dir):
    with pytest.raises(ValueError, match="keeps the fp32 weights"):
        quantize_transformer(torch.nn.Linear(2, 2), "bf16")
    pytest.importorskip("onnxruntime")
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="for backend = 'torch'"):
        nlp.add_pipe("transformer", config={"model": {
            "@architectures": "spacy_llm_ner.TransformerModel.v4", "name": tiny_bert_dir, "quantize": "bf16",
            "backend": "onnxruntime",
            "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 16, "stride": 12},
        }})
