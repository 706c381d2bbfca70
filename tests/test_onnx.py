"""The onnxruntime backend of the transformer (TransformerModel.v4
`backend = "onnxruntime"`, `python -m spacy_llm_ner export-onnx`), checked
against the torch pipeline it was exported from.

Tolerances: the fp32 graph computes what torch computes, so entities are
identical and every entity score within 1e-4 (float rounding of another
kernel library); int8 weights move scores, so entities must still be
identical on the overfitted fixture and scores within 0.1 (as for torch int8,
tests/test_quantize.py)."""
import pickle
import sys
from pathlib import Path

import pytest
import spacy
import torch
from thinc.api import fix_random_seed
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from conftest import TRAIN_DATA  # noqa: E402
from util import ents, examples, overfitted_pipeline, train  # noqa: E402

from spacy_llm_ner.cli import app  # noqa: E402
from spacy_llm_ner.ml.onnx_backend import OnnxBackbone  # noqa: E402
from spacy_llm_ner.ml.onnx_export import V4, onnx_pipeline  # noqa: E402
from spacy_llm_ner.ml.rewrite import size_on_disk  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = [text for text, _ in TRAIN_DATA]
# Long enough for several 16-token windows of different piece counts: the
# batch is padded and bucketed.
LONG = " ".join(TEXTS * 6)
TOLERANCE = {None: 1e-4, "dynamic_int8_per_channel": 0.1}


def backbone(nlp: spacy.Language) -> torch.nn.Module:
    return nlp.get_pipe("transformer").model.layers[0].shims[0]._model


def predictions(nlp: spacy.Language, texts=TEXTS) -> list:
    """Entities with their scores, for each text."""
    return [(ents(doc), list(doc.spans["transformer_ner"].attrs["scores"])) for doc in nlp.pipe(texts, batch_size=8)]


def assert_close(expected: list, got: list, tolerance: float) -> None:
    for (ents_a, scores_a), (ents_b, scores_b) in zip(expected, got):
        assert ents_b == ents_a
        assert all(abs(a - b) <= tolerance for a, b in zip(scores_a, scores_b)), (scores_a, scores_b)


@pytest.fixture(scope="module")
def fp32_dir(tiny_bert_dir, tmp_path_factory) -> Path:
    """A tiny torch pipeline overfitted on TRAIN_DATA, saved."""
    return overfitted_pipeline(tiny_bert_dir, TRAIN_DATA, tmp_path_factory.mktemp("torch") / "model", steps=60)


@pytest.fixture(scope="module", params=[None, "dynamic_int8_per_channel"], ids=["fp32", "int8"])
def exported(fp32_dir, tmp_path_factory, request):
    """The torch pipeline exported in memory (fp32, int8), where it was
    saved, and its quantization."""
    nlp = spacy.load(fp32_dir)
    assert onnx_pipeline(nlp, quantize=request.param) == ["transformer"]
    path = tmp_path_factory.mktemp("onnx") / "model"
    nlp.to_disk(path)
    return nlp, path, request.param


def test_backbone_is_an_onnx_graph(exported):
    nlp, path, quantize = exported
    model = backbone(nlp)
    assert isinstance(model, OnnxBackbone) and not list(model.parameters())
    block = nlp.get_pipe_config("transformer")["model"]
    assert block["@architectures"] == V4 and block["backend"] == "onnxruntime" and block["quantize"] == quantize
    assert block["get_spans"]["window"] == 16 and block["name"]
    ops = {node.op_type for node in __import__("onnx").load_from_string(model.graph_bytes).graph.node}
    assert ("MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops) == bool(quantize)
    # The graph is saved in the transformer's folder, in place of the weights.
    assert size_on_disk(path / "transformer") > len(model.graph_bytes)


def test_same_entities_and_scores_as_torch(fp32_dir, exported):
    nlp, _, quantize = exported
    torch_nlp = spacy.load(fp32_dir)
    expected = predictions(torch_nlp, TEXTS + [LONG])
    assert [e for e, _ in expected[:-1]] == [gold for _, gold in TRAIN_DATA]  # the fixture overfits
    assert_close(expected, predictions(nlp, TEXTS + [LONG]), TOLERANCE[quantize])
    for text in TEXTS:  # one doc per call: no padding, no buckets
        assert ents(nlp(text)) == ents(torch_nlp(text))


def test_hidden_states_match_torch_on_a_padded_batch(fp32_dir, exported):
    nlp, _, quantize = exported
    ref = backbone(spacy.load(fp32_dir)).eval()  # HFShim leaves it in train mode (dropout)
    ids = torch.randint(5, ref.config.vocab_size, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 6:], mask[2, 2:] = 0, 0
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        got = backbone(nlp)(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    limit = 1e-4 if quantize is None else 0.5
    assert (expected[real] - got[real]).abs().max() < limit


def test_save_and_load_identical(exported):
    nlp, path, _ = exported
    reloaded = spacy.load(path)
    assert isinstance(backbone(reloaded), OnnxBackbone)
    assert backbone(reloaded).graph_bytes == backbone(nlp).graph_bytes
    assert predictions(reloaded, TEXTS + [LONG]) == predictions(nlp, TEXTS + [LONG])
    reloaded.to_disk(path.parent / "again")
    assert predictions(spacy.load(path.parent / "again")) == predictions(nlp)


def test_runs_in_two_processes(exported):
    _, path, _ = exported
    nlp = spacy.load(path)
    texts = TEXTS * 3
    expected = [ents(doc) for doc in nlp.pipe(texts)]  # the parent's session exists before the fork
    assert [ents(d) for d in nlp.pipe(texts, n_process=2, batch_size=2)] == expected


def test_pickles(exported):
    # nlp.pipe(n_process=2) pickles the pipeline where processes are spawned.
    _, path, _ = exported
    nlp = spacy.load(path)
    assert predictions(pickle.loads(pickle.dumps(nlp))) == predictions(nlp)


def test_lora_adapters_are_merged_into_the_graph(tiny_bert_dir, tmp_path):
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
    expected = predictions(spacy.load(tmp_path / "lora"))
    loaded = spacy.load(tmp_path / "lora")
    onnx_pipeline(loaded)
    assert loaded.get_pipe_config("transformer")["model"]["lora"] is None
    loaded.to_disk(tmp_path / "onnx")
    assert_close(expected, predictions(spacy.load(tmp_path / "onnx")), TOLERANCE[None])


def test_cli_end_to_end(fp32_dir, tmp_path):
    out = tmp_path / "int8"
    result = CliRunner().invoke(app, ["export-onnx", str(fp32_dir), str(out), "--int8"])
    assert result.exit_code == 0, result.output
    assert "MB on disk" in result.output and "dynamic_int8_per_channel" in result.output
    nlp = spacy.load(out)
    assert isinstance(backbone(nlp), OnnxBackbone)
    assert [ents(nlp(t)) for t, _ in TRAIN_DATA] == [g for _, g in TRAIN_DATA]
    again = CliRunner().invoke(app, ["export-onnx", str(out), str(tmp_path / "twice")])
    assert again.exit_code == 1 and "already runs on 'onnxruntime'" in again.output


def test_torch_int8_pipeline_is_refused(fp32_dir):
    from spacy_llm_ner.ml.rewrite import quantize_pipeline

    nlp = spacy.load(fp32_dir)
    quantize_pipeline(nlp)
    with pytest.raises(ValueError, match="quantized for torch"):
        onnx_pipeline(nlp)


def test_missing_extra_is_named(exported, fp32_dir, monkeypatch, tmp_path):
    _, path, _ = exported
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'spacy-llm-ner\[onnx\]'"):
        spacy.load(path)
    result = CliRunner().invoke(app, ["export-onnx", str(fp32_dir), str(tmp_path / "out")])
    # wasabi wraps the message: compare it with its line breaks as spaces.
    assert result.exit_code == 1 and "pip install 'spacy-llm-ner[onnx]'" in " ".join(result.output.split())


def test_torch_weights_with_onnx_config_are_refused(fp32_dir):
    override = {"components.transformer.model.@architectures": V4, "components.transformer.model.backend": "onnxruntime"}
    with pytest.raises(ValueError, match="torch weights, not an ONNX graph"):
        spacy.load(fp32_dir, config=override)


def test_config_must_name_the_graphs_quantization(exported):
    _, path, quantize = exported
    other = None if quantize else "dynamic_int8"
    with pytest.raises(ValueError, match="the config sets quantize"):
        spacy.load(path, config={"components.transformer.model.quantize": other})


def test_onnx_backend_initializes_from_pretrained_and_only_predicts(tiny_bert_dir):
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {
        "@architectures": V4, "name": tiny_bert_dir, "backend": "onnxruntime",
        "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 16, "stride": 12},
    }})
    nlp.add_pipe("transformer_ner")
    egs = examples(nlp, TRAIN_DATA)
    nlp.initialize(lambda: egs)  # pretrained weights, exported as they are set
    assert isinstance(backbone(nlp), OnnxBackbone)
    assert len(list(nlp.pipe(TEXTS))) == len(TEXTS)
    with pytest.raises(ValueError, match="can only predict"):
        nlp.update(egs, losses={})


def test_unknown_backend_is_clear(tiny_bert_dir):
    with pytest.raises(ValueError, match="Unknown transformer backend 'tensorrt'"):
        spacy.blank("en").add_pipe("transformer", config={"model": {
            "@architectures": V4, "name": tiny_bert_dir, "backend": "tensorrt",
            "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 16, "stride": 12},
        }})
