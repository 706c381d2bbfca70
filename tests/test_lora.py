"""LoRA adapters on the transformer (spacy_llm_ner.TransformerModel.v2)."""
import pickle

import numpy
import pytest
import spacy
from thinc.api import fix_random_seed

from conftest import TRAIN_DATA
from util import ents, examples

pytest.importorskip("peft")

LORA = {"r": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": ["query", "value"]}


def make_nlp(model_dir: str, lora=LORA) -> spacy.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {
        "@architectures": "spacy_llm_ner.TransformerModel.v2",
        "name": model_dir,
        "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 16, "stride": 12},
        "tokenizer_config": {"use_fast": True},
        "lora": lora,
    }})
    nlp.add_pipe("transformer_ner", config={"head_lr_scale": 5.0})
    return nlp


def torch_model(nlp):
    return nlp.get_pipe("transformer").model.layers[0].shims[0]._model


def weights(nlp):
    return {k: v.detach().clone().numpy() for k, v in torch_model(nlp).state_dict().items()}


@pytest.fixture(scope="module")
def trained(tiny_bert_dir):
    fix_random_seed(0)
    nlp = make_nlp(tiny_bert_dir)
    egs = examples(nlp, TRAIN_DATA)
    optimizer = nlp.initialize(lambda: egs)
    optimizer.learn_rate = 0.005
    start = weights(nlp)
    for _ in range(150):
        nlp.update(egs, sgd=optimizer, losses={})
    return nlp, start


def test_only_adapters_train(trained):
    from spacy_llm_ner.ml.lora import parameter_counts

    nlp, start = trained
    end = weights(nlp)
    lora = [k for k in end if "lora_" in k]
    assert lora and all(".query." in k or ".value." in k for k in lora)
    assert any(not numpy.array_equal(start[k], end[k]) for k in lora if "lora_B" in k)
    assert all(numpy.array_equal(start[k], end[k]) for k in end if "lora_" not in k)
    counts = parameter_counts(nlp.get_pipe("transformer").model)
    assert 0 < counts["trainable"] < counts["total"] / 10
    assert counts["trainable"] == sum(end[k].size for k in lora)


def test_overfit_save_and_reload(trained, tmp_path):
    nlp, _ = trained
    for text, gold in TRAIN_DATA:
        assert ents(nlp(text)) == gold, text
    nlp.to_disk(tmp_path / "model")
    reloaded = spacy.load(tmp_path / "model")
    saved = weights(reloaded)
    assert any("lora_" in k for k in saved)
    for k, v in weights(nlp).items():
        assert numpy.array_equal(v, saved[k]), k
    texts = [t for t, _ in TRAIN_DATA]
    for doc, text in zip(reloaded.pipe(texts, batch_size=2), texts):
        assert ents(doc) == ents(nlp(text)) == ents(reloaded(text))
    # Picklable (nlp.pipe(n_process=...) with the spawn start method).
    unpickled = pickle.loads(pickle.dumps(reloaded))
    assert [ents(d) for d in unpickled.pipe(texts)] == [ents(nlp(t)) for t in texts]


def test_without_lora_everything_trains(tiny_bert_dir):
    nlp = make_nlp(tiny_bert_dir, lora=None)
    nlp.initialize(lambda: examples(nlp, TRAIN_DATA))
    model = torch_model(nlp)
    assert not any("lora_" in name for name, _ in model.named_parameters())
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("lora,message", [
    ({"r": 0}, "r must be >= 1"),
    ({"rank": 4}, "Unknown lora settings \\['rank'\\]"),
    ({"target_modules": ["nope"]}, "target_modules \\['nope'\\] not found"),
])
def test_bad_settings_are_clear(tiny_bert_dir, lora, message):
    with pytest.raises(ValueError, match=message):
        nlp = make_nlp(tiny_bert_dir, lora=lora)
        nlp.initialize(lambda: examples(nlp, TRAIN_DATA))


def hidden_states(nlp, texts):
    return [numpy.asarray(doc._.trf_data.tensors[0]) for doc in nlp.pipe(texts)]


def test_merge_lora_keeps_predictions_and_loads_plain(trained, tmp_path):
    from typer.testing import CliRunner

    from spacy_llm_ner.cli import app

    nlp, _ = trained
    nlp.to_disk(tmp_path / "adapted")
    result = CliRunner().invoke(app, ["merge-lora", str(tmp_path / "adapted"), str(tmp_path / "merged")])
    assert result.exit_code == 0, result.output
    merged = spacy.load(tmp_path / "merged")
    assert merged.get_pipe_config("transformer")["model"]["lora"] is None
    model = torch_model(merged)
    assert not any("lora_" in name for name, _ in model.named_modules())
    assert all(p.requires_grad for p in model.parameters())
    texts = [t for t, _ in TRAIN_DATA]
    for before, after in zip(hidden_states(nlp, texts), hidden_states(merged, texts)):
        assert numpy.allclose(before, after, atol=1e-4)
    assert [ents(doc) for doc in merged.pipe(texts)] == [ents(merged(t)) for t in texts] == [ents(nlp(t)) for t in texts]
    # The merged adapters changed the backbone: it is not the pretrained one.
    original = weights(spacy.load(tmp_path / "adapted"))
    query = next(k for k in weights(merged) if k.endswith("attention.self.query.weight"))
    assert not numpy.allclose(weights(merged)[query], original[query.replace(".weight", ".base_layer.weight")])


def test_merge_lora_in_memory_then_save(trained, tmp_path):
    from spacy_llm_ner.ml.rewrite import merge_lora_pipeline

    nlp, _ = trained
    nlp.to_disk(tmp_path / "adapted")
    loaded = spacy.load(tmp_path / "adapted")
    assert merge_lora_pipeline(loaded) == ["transformer"]
    assert "lora" not in loaded.get_pipe("transformer").model.attrs
    texts = [t for t, _ in TRAIN_DATA]
    loaded.to_disk(tmp_path / "merged")
    reloaded = spacy.load(tmp_path / "merged")
    for a, b in zip(hidden_states(loaded, texts), hidden_states(reloaded, texts)):
        assert numpy.array_equal(a, b)
    with pytest.raises(ValueError, match="has LoRA adapters"):
        merge_lora_pipeline(reloaded)


def test_merge_lora_refuses_plain_pipeline(tiny_bert_dir, tmp_path):
    from typer.testing import CliRunner

    from spacy_llm_ner.cli import app

    nlp = make_nlp(tiny_bert_dir, lora=None)
    nlp.initialize(lambda: examples(nlp, TRAIN_DATA))
    nlp.to_disk(tmp_path / "plain")
    result = CliRunner().invoke(app, ["merge-lora", str(tmp_path / "plain"), str(tmp_path / "out")])
    assert result.exit_code == 1 and "has LoRA adapters" in result.output
    assert not (tmp_path / "out").exists()
