"""Structured pruning of the transformer (ml/prune.py, ml/rewrite.py
prune_pipeline), the recovery fine-tune (training/recover.py) and
`python -m spacy_llm_ner prune`."""
from pathlib import Path

import numpy
import pytest
import spacy
import torch
from spacy.tokens import DocBin
from thinc.api import fix_random_seed
from transformers import BertModel
from typer.testing import CliRunner

from conftest import TRAIN_DATA, save_tiny_bert
from util import ents, examples, make_nlp, overfitted_pipeline, train

from spacy_llm_ner.cli import app
from spacy_llm_ner.ml.prune import (
    choose_layers, drop_layers, head_importance, hf_transformer, prune_heads, remaining_heads, select_heads,
)
from spacy_llm_ner.ml.quantize import float_linears, quantized_linears
from spacy_llm_ner.ml.rewrite import prune_pipeline, quantize_pipeline
from spacy_llm_ner.training.distill import distill_corpus
from spacy_llm_ner.training.recover import distillation_loss, recover, teacher_examples

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = [text for text, _ in TRAIN_DATA]
LAYERS, HEADS, HEAD_SIZE = 3, 4, 8


def predictions(nlp: spacy.Language) -> list:
    """Entities with their scores, for every training text."""
    return [(ents(doc), list(doc.spans["transformer_ner"].attrs["scores"])) for doc in nlp.pipe(TEXTS, batch_size=2)]


def backbone(nlp: spacy.Language) -> torch.nn.Module:
    return hf_transformer(nlp.get_pipe("transformer"))


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> str:
    """A tiny random BERT with 3 layers of 4 heads (head size 8)."""
    return save_tiny_bert(tmp_path_factory.mktemp("bert_4heads"), layers=LAYERS, heads=HEADS)


@pytest.fixture(scope="module")
def fp32_dir(bert_dir, tmp_path_factory) -> Path:
    """A tiny pipeline overfitted on TRAIN_DATA, saved: the teacher."""
    return overfitted_pipeline(bert_dir, TRAIN_DATA, tmp_path_factory.mktemp("teacher") / "model", steps=40)


@pytest.fixture(scope="module")
def pruned(fp32_dir, tmp_path_factory):
    """The teacher with 2 heads per layer and 2 layers left, in memory and
    saved."""
    nlp = spacy.load(fp32_dir)
    record = prune_pipeline(nlp, examples(nlp, TRAIN_DATA), heads_per_layer=2, layers=2)
    path = tmp_path_factory.mktemp("pruned") / "model"
    nlp.to_disk(path)
    return nlp, path, record


def test_importance_ranks_a_silenced_head_lowest(fp32_dir):
    nlp = spacy.load(fp32_dir)
    model = backbone(nlp)
    # Head 2 of layer 1 attends to nothing: its value projection is zero, so
    # its output is zero whatever the input, and so is its gate's gradient.
    value = model.encoder.layer[1].attention.self.value
    with torch.no_grad():
        value.weight[2 * HEAD_SIZE : 3 * HEAD_SIZE] = 0.0
        value.bias[2 * HEAD_SIZE : 3 * HEAD_SIZE] = 0.0
    scores = head_importance(nlp, examples(nlp, TRAIN_DATA), batch_size=2)
    assert [len(s) for s in scores] == [HEADS] * LAYERS
    assert scores[1][2] == pytest.approx(0.0, abs=1e-12)
    assert int(numpy.argmin(scores[1])) == 2
    assert all((s > 0).all() for i, s in enumerate(scores) if i != 1)
    # Each layer's scores are L2-normalized.
    assert numpy.linalg.norm(scores[0]) == pytest.approx(1.0)
    # Measuring leaves no gradient behind for a later fine-tune.
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_pruned_heads_match_head_mask(bert_dir):
    model = BertModel.from_pretrained(bert_dir).eval()
    ids = torch.randint(5, 40, (2, 12))
    scores = [numpy.asarray([0.4, 0.1, 0.3, 0.2]), numpy.asarray([0.1, 0.2, 0.3, 0.4]), numpy.asarray([1, 0, 0, 1.0])]
    prune = select_heads(scores, remaining_heads(model), heads_per_layer=2)
    assert prune == {0: [1, 3], 1: [0, 1], 2: [1, 2]}
    mask = torch.ones(LAYERS, HEADS)
    for layer, heads in prune.items():
        mask[layer, heads] = 0.0
    with torch.no_grad():
        masked = model(ids, head_mask=mask).last_hidden_state
        prune_heads(model, prune)
        out = model(ids).last_hidden_state
    attention = model.encoder.layer[0].attention
    assert attention.self.query.weight.shape == (2 * HEAD_SIZE, 32)
    assert attention.self.value.weight.shape == (2 * HEAD_SIZE, 32)
    assert attention.output.dense.weight.shape == (32, 2 * HEAD_SIZE)
    assert remaining_heads(model) == [[0, 2], [2, 3], [0, 3]]
    assert torch.allclose(out, masked, atol=1e-5)


def test_select_heads_by_fraction_keeps_one_per_layer():
    scores = [numpy.asarray([0.9, 0.8, 0.7, 0.6]), numpy.asarray([0.01, 0.02, 0.03, 0.04]), numpy.ones(4) * 0.5]
    prune = select_heads(scores, [[0, 1, 2, 3]] * 3, keep_fraction=0.5)
    kept = {layer: sorted(set(range(4)) - set(prune.get(layer, []))) for layer in range(3)}
    assert kept[1] == [3]  # the weakest layer keeps its best head only
    assert kept[0] == [0, 1, 2, 3] and len(kept[2]) == 1
    with pytest.raises(ValueError):
        select_heads(scores, [[0, 1, 2, 3]] * 3, heads_per_layer=2, keep_fraction=0.5)


def test_drop_layers_renumbers_and_rebuilds(bert_dir):
    model = BertModel.from_pretrained(bert_dir).eval()
    prune_heads(model, {2: [0, 1]})
    assert choose_layers(6, 3, strategy="top") == [0, 1, 2]
    assert choose_layers(6, 3, strategy="even") == [0, 2, 5]
    drop_layers(model, [0, 2])
    assert len(model.encoder.layer) == 2 and model.config.num_hidden_layers == 2
    assert model.config.pruned_heads == {1: [0, 1]}
    rebuilt = BertModel(model.config).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    ids = torch.randint(5, 40, (1, 9))
    with torch.no_grad():
        assert torch.equal(rebuilt(ids).last_hidden_state, model(ids).last_hidden_state)


def test_pruned_pipeline_saves_and_loads(pruned, fp32_dir):
    nlp, path, record = pruned
    assert record["layers_kept"] == [0, 1] and record["after"]["heads_per_layer"] == [2, 2]
    assert record["after"]["parameters"] < record["before"]["parameters"]
    reloaded = spacy.load(path)
    model = backbone(reloaded)
    assert len(model.encoder.layer) == 2
    assert model.encoder.layer[1].attention.self.key.weight.shape == (2 * HEAD_SIZE, 32)
    live = backbone(nlp).state_dict()
    assert all(torch.equal(live[k], v) for k, v in model.state_dict().items()) and live.keys() == model.state_dict().keys()
    assert reloaded.meta["pruned"][0]["after"] == record["after"]
    assert predictions(reloaded) == predictions(nlp)
    assert [ents(reloaded(t)) for t in TEXTS] == [ents(doc) for doc in reloaded.pipe(TEXTS)]
    # The teacher is untouched on disk.
    assert len(backbone(spacy.load(fp32_dir)).encoder.layer) == LAYERS


def test_recovery_lowers_the_distillation_loss(bert_dir, tmp_path):
    # A briefly trained teacher: soft distributions, which pruning moves.
    fix_random_seed(0)
    teacher = make_nlp("transformer", model_dir=bert_dir, head_lr_scale=5.0)
    train(teacher, TRAIN_DATA, steps=6, learn_rate=0.01)
    student = spacy.load(teacher.to_disk(tmp_path / "teacher") or tmp_path / "teacher")
    # Raw texts: no gold entities, so the fine-tune learns from the teacher
    # alone and the KL is what it minimizes.
    egs = teacher_examples(student, distill_corpus(teacher, texts=TEXTS + [t.lower() for t in TEXTS]))
    assert distillation_loss(teacher, egs) == pytest.approx(0.0, abs=1e-4)  # float16 targets
    prune_pipeline(student, egs, heads_per_layer=1, layers=1)
    before = distillation_loss(student, egs)
    fix_random_seed(0)
    losses = recover(student, egs, steps=30, batch_size=4, learn_rate=1e-3)
    assert len(losses) == 30
    assert distillation_loss(student, egs) < 0.9 * before
    assert student.get_pipe("transformer_ner").cfg["distill_weight"] == teacher.get_pipe("transformer_ner").cfg["distill_weight"]


def test_quantize_a_pruned_pipeline(pruned, tmp_path):
    _, path, _ = pruned
    nlp = spacy.load(path)
    quantize_pipeline(nlp)
    nlp.to_disk(tmp_path / "int8")
    reloaded = spacy.load(tmp_path / "int8")
    model = backbone(reloaded)
    assert quantized_linears(model) and not float_linears(model)
    assert model.encoder.layer[0].attention.self.query.weight().shape == (2 * HEAD_SIZE, 32)
    assert len(model.encoder.layer) == 2
    assert predictions(reloaded) == predictions(nlp)
    with pytest.raises(ValueError, match="quantize"):
        prune_pipeline(reloaded, [], layers=1)


def test_cli_prune(fp32_dir, tmp_path):
    nlp = spacy.load(fp32_dir)
    data = tmp_path / "train.spacy"
    DocBin(docs=[eg.reference for eg in examples(nlp, TRAIN_DATA)]).to_disk(data)
    out = tmp_path / "out"
    runner = CliRunner()
    args = ["prune", str(fp32_dir), str(out), "--data", str(data), "--steps", "3", "--batch-size", "2"]
    result = runner.invoke(app, args + ["--keep-heads", "0.5", "--layers", "2"])
    assert result.exit_code == 0, result.output
    model = backbone(spacy.load(out))
    assert len(model.encoder.layer) == 2 and sum(map(len, remaining_heads(model))) == 4
    both = runner.invoke(app, args[:2] + [str(tmp_path / "x"), "--data", str(data), "--heads-per-layer", "2", "--keep-heads", "0.5"])
    assert both.exit_code == 1 and not (tmp_path / "x").exists()
