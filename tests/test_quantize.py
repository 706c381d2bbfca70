"""Dynamic int8 quantization of the transformer (TransformerModel.v3
`quantize`, `python -m spacy_llm_ner quantize`)."""
import pickle
from pathlib import Path

import pytest
import spacy
import torch
from thinc.api import fix_random_seed
from typer.testing import CliRunner

from conftest import TRAIN_DATA
from util import ents, examples, overfitted_pipeline, train

from spacy_llm_ner.cli import app
from spacy_llm_ner.ml.rewrite import V3, quantize_pipeline, size_on_disk
from spacy_llm_ner.ml.lora import merge_adapters
from spacy_llm_ner.ml.methods import INT8_METHODS
from spacy_llm_ner.ml.quantize import DEFAULT_METHOD, QUANTIZE_METHODS, float_linears, quantized_linears

TEXTS = [text for text, _ in TRAIN_DATA]
QUANTIZED_LINEAR = torch.ao.nn.quantized.dynamic.Linear


def torch_model(nlp: spacy.Language) -> torch.nn.Module:
    return nlp.get_pipe("transformer").model.layers[0].shims[0]._model


def predictions(nlp: spacy.Language) -> list:
    """Entities with their scores, for every training text."""
    return [(ents(doc), list(doc.spans["transformer_ner"].attrs["scores"])) for doc in nlp.pipe(TEXTS, batch_size=2)]


@pytest.fixture(scope="module")
def fp32_dir(tiny_bert_dir, tmp_path_factory) -> Path:
    """A tiny pipeline overfitted on TRAIN_DATA, saved."""
    return overfitted_pipeline(tiny_bert_dir, TRAIN_DATA, tmp_path_factory.mktemp("fp32") / "model", steps=60)


@pytest.fixture(scope="module", params=INT8_METHODS)
def quantized(fp32_dir, tmp_path_factory, request):
    """The fp32 pipeline quantized in memory (each method), and where it was
    saved."""
    nlp = spacy.load(fp32_dir)
    assert quantize_pipeline(nlp, method=request.param) == ["transformer"]
    path = tmp_path_factory.mktemp("int8") / "model"
    nlp.to_disk(path)
    return nlp, path


def test_linear_modules_are_quantized(fp32_dir, quantized):
    nlp, _ = quantized
    n_linear = len(float_linears(torch_model(spacy.load(fp32_dir))))
    model = torch_model(nlp)
    assert n_linear == 2 * 6 + 1  # per layer q, k, v, attention out, intermediate, output; pooler
    assert len(quantized_linears(model)) == n_linear
    assert not float_linears(model)
    query = model.encoder.layer[0].attention.self.query
    assert type(query) is QUANTIZED_LINEAR and query.weight().dtype == torch.qint8
    block = nlp.get_pipe_config("transformer")["model"]
    assert block["@architectures"] == V3 and block["quantize"] in QUANTIZE_METHODS
    assert block["get_spans"]["window"] == 16 and block["name"]


def test_save_and_load_identical(quantized):
    nlp, path = quantized
    reloaded = spacy.load(path)
    model = torch_model(reloaded)
    assert len(quantized_linears(model)) == len(quantized_linears(torch_model(nlp))) and not float_linears(model)
    saved, live = model.state_dict(), torch_model(nlp).state_dict()
    key = "encoder.layer.1.output.dense._packed_params._packed_params"
    assert torch.equal(saved[key][0].int_repr(), live[key][0].int_repr())
    assert predictions(reloaded) == predictions(nlp)
    assert [ents(reloaded(t)) for t in TEXTS] == [ents(nlp(t)) for t in TEXTS]


def test_quantized_pipeline_pickles(quantized):
    # nlp.pipe(n_process=2) pickles the pipeline where processes are spawned.
    nlp, _ = quantized
    assert predictions(pickle.loads(pickle.dumps(nlp))) == predictions(nlp)


def test_disk_size_shrinks(fp32_dir, quantized):
    _, path = quantized
    # Int8 Linear weights: the tiny model shrinks less than a real one, whose
    # file is not mostly tokenizer and pickling overhead.
    assert size_on_disk(path / "transformer") < 0.8 * size_on_disk(fp32_dir / "transformer")
    assert size_on_disk(path) < size_on_disk(fp32_dir)


def test_predictions_close_to_fp32(fp32_dir, quantized):
    fp32, int8 = predictions(spacy.load(fp32_dir)), predictions(quantized[0])
    for (text, gold), (ents32, scores32), (ents8, scores8) in zip(TRAIN_DATA, fp32, int8):
        assert ents32 == gold, text  # the fixture overfits
        assert ents8 == ents32, text
        assert max(abs(a - b) for a, b in zip(scores32, scores8)) < 0.1


def test_cli_end_to_end(fp32_dir, tmp_path):
    out = tmp_path / "int8"
    result = CliRunner().invoke(app, ["quantize", str(fp32_dir), str(out)])
    assert result.exit_code == 0, result.output
    assert "MB on disk" in result.output and DEFAULT_METHOD in result.output
    nlp = spacy.load(out)
    assert quantized_linears(torch_model(nlp)) and [ents(nlp(t)) for t, _ in TRAIN_DATA] == [g for _, g in TRAIN_DATA]
    again = CliRunner().invoke(app, ["quantize", str(out), str(tmp_path / "twice")])
    assert again.exit_code == 1 and "already quantized" in again.output


def test_lora_pipeline_is_merged_then_quantized(tiny_bert_dir, tmp_path):
    pytest.importorskip("peft")
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {
        "@architectures": "spacy_llm_ner.TransformerModel.v2",
        "name": tiny_bert_dir,
        "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 16, "stride": 12},
        "tokenizer_config": {"use_fast": True},
        "lora": {"r": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": ["query", "value"]},
    }})
    nlp.add_pipe("transformer_ner")
    train(nlp, TRAIN_DATA, steps=5, learn_rate=0.01)
    nlp.to_disk(tmp_path / "lora")
    loaded = spacy.load(tmp_path / "lora")
    assert quantize_pipeline(loaded) == ["transformer"]
    block = loaded.get_pipe_config("transformer")["model"]
    assert block["@architectures"] == V3 and block["lora"]["r"] == 4
    model = torch_model(loaded)
    assert not any("lora_" in k for k in model.state_dict()) and not float_linears(model)
    loaded.to_disk(tmp_path / "int8")
    reloaded = spacy.load(tmp_path / "int8")
    assert not float_linears(torch_model(reloaded))
    assert predictions(reloaded) == predictions(loaded)


def test_merge_adapters_keeps_outputs(tiny_bert_dir):
    pytest.importorskip("peft")
    from transformers import AutoModel

    from spacy_llm_ner.ml.lora import inject, lora_config

    model = inject(AutoModel.from_pretrained(tiny_bert_dir), lora_config(r=4, target_modules=["query", "value"]))
    model.eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # B starts at zero: make the adapters do something
        ids = torch.tensor([[2, 5, 6, 7, 3]])
        before = model(ids).last_hidden_state
        merge_adapters(model)
        after = model(ids).last_hidden_state
    assert not any("lora_" in name for name, _ in model.named_modules())
    assert torch.allclose(before, after, atol=1e-5)


def test_fp32_state_with_quantize_config_is_refused(fp32_dir):
    override = {"components.transformer.model.@architectures": V3, "components.transformer.model.quantize": "dynamic_int8"}
    with pytest.raises(ValueError, match="weights are not quantized"):
        spacy.load(fp32_dir, config=override)


def test_quantized_transformer_only_predicts(tiny_bert_dir):
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {
        "@architectures": V3, "name": tiny_bert_dir, "quantize": "dynamic_int8",
        "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 16, "stride": 12},
    }})
    nlp.add_pipe("transformer_ner")
    egs = examples(nlp, TRAIN_DATA)
    nlp.initialize(lambda: egs)  # from pretrained weights: quantized as they are set
    assert quantized_linears(torch_model(nlp)) and not float_linears(torch_model(nlp))
    assert len(list(nlp.pipe(TEXTS))) == len(TEXTS)
    with pytest.raises(ValueError, match="can only predict"):
        nlp.update(egs, losses={})


def test_unknown_method_is_clear(tiny_bert_dir):
    with pytest.raises(ValueError, match="Unknown quantize method 'int4'"):
        nlp = spacy.blank("en")
        nlp.add_pipe("transformer", config={"model": {
            "@architectures": V3, "name": tiny_bert_dir, "quantize": "int4",
            "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 16, "stride": 12},
        }})
