"""Continual learning: a label added to a trained transformer_ner (head grown,
old weights kept), rehearsal on the old pipeline's own distributions, and
`spacy train` resuming a sourced pipeline with a new label."""
import json
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from thinc.api import fix_random_seed

from conftest import TRAIN_DATA
from util import ents, make_nlp, train
from spacy_llm_ner.pipeline.ner_labels import UNSEEN_KEY
from spacy_llm_ner.training import RehearsalCorpus, SOFT_TAGS_KEY, soft_targets, teacher_distributions
from spacy_llm_ner.training.weak import LABELS_KEY

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parents[1]
TEXTS = [text for text, _ in TRAIN_DATA]
# The old model knows CHEM only; the new data is annotated for DIS only.
CHEM_DATA = [(text, [e for e in gold if e[2] == "CHEM"]) for text, gold in TRAIN_DATA]
DIS_DATA = [(text, [e for e in gold if e[2] == "DIS"]) for text, gold in TRAIN_DATA]


def _train_old(model_dir: str, folder: Path, decoder: str) -> Path:
    fix_random_seed(0)
    nlp = make_nlp("transformer", model_dir=model_dir, decoder=decoder)
    train(nlp, CHEM_DATA, steps=60, learn_rate=0.005)
    assert [ents(doc) for doc in nlp.pipe(TEXTS)] == [
        [(s, e, label) for s, e, label in gold] for _, gold in CHEM_DATA
    ]
    nlp.to_disk(folder)
    return folder


@pytest.fixture(scope="module")
def trained_old(tiny_bert_dir, tmp_path_factory):
    """Pipelines trained on CHEM only, saved, one per decoder (on demand)."""
    paths = {}

    def get(decoder: str) -> Path:
        if decoder not in paths:
            paths[decoder] = _train_old(tiny_bert_dir, tmp_path_factory.mktemp(f"old_{decoder}") / "old", decoder)
        return paths[decoder]

    return get


@pytest.fixture(params=["crf", "softmax"])
def old_path(request, trained_old) -> Path:
    return trained_old(request.param)


def _predictions(nlp):
    docs = list(nlp.pipe(TEXTS))
    return [ents(doc) for doc in docs], [list(doc.spans["transformer_ner"].attrs["scores"]) for doc in docs]


def _head(ner):
    output, crf = ner.model.get_ref("output_layer"), ner.model.get_ref("crf")
    return {
        "W": output.get_param("W").copy(), "b": output.get_param("b").copy(),
        **{name: crf.get_param(name).copy() for name in ("transitions", "start", "end")},
    }


def _student(old_path: Path):
    nlp = spacy.load(old_path)
    assert nlp.get_pipe("transformer_ner").add_label("DIS") == 1
    return nlp


def _update(nlp, egs, steps: int, learn_rate: float = 0.005) -> None:
    optimizer = nlp.resume_training()
    optimizer.learn_rate = learn_rate
    for _ in range(steps):
        nlp.update(egs, sgd=optimizer, losses={})


def _chem(predictions):
    return [[e for e in doc if e[2] == "CHEM"] for doc in predictions]


def test_added_label_keeps_old_predictions_and_weights(old_path):
    nlp = spacy.load(old_path)
    ner = nlp.get_pipe("transformer_ner")
    before, before_head, old_tags = _predictions(nlp), _head(ner), ner.tagset.tags
    assert ner.add_label("DIS") == 1 and ner.add_label("DIS") == 0
    assert ner.labels == ("CHEM", "DIS") and ner.cfg[UNSEEN_KEY] == ["DIS"]
    # Exactly the same entities and confidences: the new tags are masked.
    assert _predictions(nlp) == before
    after = _head(ner)
    n_old, n_new = len(old_tags), len(ner.tagset)
    assert ner.tagset.tags[:n_old] == old_tags and n_new == n_old + 4
    assert after["W"].shape[0] == after["b"].shape[0] == n_new
    assert numpy.array_equal(after["W"][:n_old], before_head["W"])
    assert numpy.array_equal(after["b"][:n_old], before_head["b"])
    assert numpy.array_equal(after["transitions"][:n_old, :n_old], before_head["transitions"])
    for name in ("start", "end"):
        assert numpy.array_equal(after[name][:n_old], before_head[name])
    assert not after["W"][n_old:].any() and not after["transitions"][n_old:].any()
    # The grown model runs forward with the new width.
    assert ner.model.predict([nlp.make_doc(TEXTS[0])]).emissions[0].shape[1] == n_new


def test_mask_survives_save_and_is_lifted_by_gold_of_the_label(old_path, tmp_path):
    nlp = _student(old_path)
    before = _predictions(spacy.load(old_path))
    nlp.to_disk(tmp_path / "grown")
    reloaded = spacy.load(tmp_path / "grown")
    assert reloaded.get_pipe("transformer_ner").labels == ("CHEM", "DIS")
    assert _predictions(reloaded) == before
    egs = [Example.from_dict(reloaded.make_doc(t), {"entities": e}) for t, e in DIS_DATA]
    _update(reloaded, egs[:1], 1)
    assert reloaded.get_pipe("transformer_ner").cfg[UNSEEN_KEY] == []


def _rehearsal(old_path: Path, nlp):
    train_file = old_path.parent / "dis.spacy"
    if not train_file.exists():
        blank = spacy.blank("en")
        DocBin(docs=[eg.reference for eg in _examples(blank, DIS_DATA)]).to_disk(train_file)
    return RehearsalCorpus(train_file, old_path)


def _examples(nlp, data):
    return [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in data]


def test_rehearsal_targets_come_from_the_old_model(old_path):
    """Targets made after the student has moved away are still the old
    pipeline's: the teacher is the saved pipeline, not the student."""
    student = _student(old_path)
    _update(student, _examples(student, DIS_DATA), 10)
    egs = list(_rehearsal(old_path, student)(student))
    old = spacy.load(old_path)
    old_tags = old.get_pipe("transformer_ner").tagset.tags
    tags = student.get_pipe("transformer_ner").tagset.tags
    expected = list(teacher_distributions(old, [old.make_doc(t) for t in TEXTS]))
    moved = list(teacher_distributions(student, [student.make_doc(t) for t in TEXTS]))
    for eg, teacher_probs, student_probs, (_, gold) in zip(egs, expected, moved, DIS_DATA):
        target = soft_targets(eg, tags)
        inside = numpy.zeros(len(eg.predicted), dtype=bool)
        for s, e, _ in gold:
            inside[eg.predicted.char_span(s, e).start : eg.predicted.char_span(s, e).end] = True
        # No target inside the new gold; elsewhere the old model's
        # distribution, with nothing on the new label's tags.
        assert numpy.isnan(target[inside][:, : len(old_tags)]).all() and not numpy.isnan(target[~inside]).any()
        assert numpy.allclose(target[~inside][:, : len(old_tags)], teacher_probs[~inside], atol=2e-3)
        assert not target[~inside][:, len(old_tags):].any()
        assert not numpy.allclose(student_probs[~inside][:, : len(old_tags)], teacher_probs[~inside], atol=2e-3)
        # Outside the new gold, tokens are open to anything but the gold's labels.
        assert eg.reference.user_data[LABELS_KEY] == ["DIS"]
        assert [e.label_ for e in eg.reference.ents] == ["DIS"] * len(gold)
        assert all(t.ent_iob_ == "" for t in eg.reference if not t.ent_type_)


def test_raw_text_rehearsal_is_open_with_the_teachers_targets(trained_old, tmp_path):
    old_path = trained_old("crf")
    (tmp_path / "raw.txt").write_text("".join(text + "\n" for text in TEXTS[:2]), encoding="utf8")
    student = _student(old_path)
    corpus = RehearsalCorpus(_rehearsal(old_path, student).path, old_path, texts=tmp_path / "raw.txt", limit=1)
    egs = list(corpus(student))
    assert [eg.reference.text for eg in egs] == [TEXTS[0], *TEXTS[:2]]
    old = spacy.load(old_path)
    tags = student.get_pipe("transformer_ner").tagset.tags
    n_old = len(old.get_pipe("transformer_ner").tagset)
    for eg, probs in zip(egs[1:], teacher_distributions(old, [old.make_doc(t) for t in TEXTS[:2]])):
        assert not eg.reference.has_annotation("ENT_IOB") and LABELS_KEY not in eg.reference.user_data
        assert numpy.allclose(soft_targets(eg, tags)[:, :n_old], probs, atol=2e-3)
    # Read once: the same docs, not a second teacher pass.
    assert [eg.reference for eg in corpus(student)] == [eg.reference for eg in egs]


def test_rehearsal_keeps_old_labels_that_plain_fine_tuning_forgets(old_path, tmp_path):
    old_chem = _chem(_predictions(spacy.load(old_path))[0])
    assert any(old_chem)
    plain = _student(old_path)
    fix_random_seed(1)
    _update(plain, _examples(plain, DIS_DATA), 100)
    rehearsed = _student(old_path)
    egs = list(_rehearsal(old_path, rehearsed)(rehearsed))
    assert all(SOFT_TAGS_KEY in eg.reference.user_data for eg in egs)
    fix_random_seed(1)
    _update(rehearsed, egs, 100)
    plain_pred, rehearsed_pred = _predictions(plain)[0], _predictions(rehearsed)[0]
    dis_gold = [[(s, e, label) for s, e, label in gold] for _, gold in DIS_DATA]
    # Both learn the new label; only the rehearsed one keeps the old one.
    for predictions in (plain_pred, rehearsed_pred):
        assert [[e for e in doc if e[2] == "DIS"] for doc in predictions] == dis_gold
    assert _chem(rehearsed_pred) == old_chem
    n_kept = sum(len(set(p) & set(o)) for p, o in zip(_chem(plain_pred), old_chem))
    assert n_kept < sum(map(len, old_chem)) / 2
    rehearsed.to_disk(tmp_path / "rehearsed")
    reloaded = spacy.load(tmp_path / "rehearsed")
    assert reloaded.get_pipe("transformer_ner").labels == ("CHEM", "DIS")
    assert _predictions(reloaded)[0] == rehearsed_pred


def test_spacy_train_resumes_a_sourced_pipeline_with_a_new_label(trained_old, tmp_path):
    """configs/ner.cfg with both components sourced from the trained
    pipeline, the rehearsal corpus and the label-adding callback."""
    from spacy import util
    from spacy.cli.train import train as spacy_train

    old_path = trained_old("crf")
    blank = spacy.blank("en")
    DocBin(docs=[eg.reference for eg in _examples(blank, TRAIN_DATA)]).to_disk(tmp_path / "dev.spacy")
    config = util.load_config(ROOT / "configs" / "ner.cfg", interpolate=False)
    config["components"] = {name: {"source": str(old_path)} for name in ("transformer", "transformer_ner")}
    config["corpora"]["train"] = {
        "@readers": "spacy_llm_ner.rehearsal_corpus.v1", "path": str(_rehearsal(old_path, blank).path),
        "teacher": str(old_path),
    }
    config["initialize"]["after_init"] = {
        "@callbacks": "spacy_llm_ner.add_ner_labels.v1", "labels": ["DIS"], "distill_weight": 2.0,
    }
    config.to_disk(tmp_path / "continue.cfg")
    overrides = {
        "paths.dev": str(tmp_path / "dev.spacy"), "training.max_steps": 40, "training.eval_frequency": 20,
        "training.optimizer.learn_rate.warmup_steps": 1, "training.optimizer.learn_rate.initial_rate": 0.005,
        "training.logger.progress_bar": False,
    }
    fix_random_seed(0)
    spacy_train(tmp_path / "continue.cfg", tmp_path / "out", overrides=overrides)
    nlp = spacy.load(tmp_path / "out" / "model-last")
    ner = nlp.get_pipe("transformer_ner")
    assert ner.labels == ("CHEM", "DIS") and ner.cfg[UNSEEN_KEY] == [] and ner.cfg["distill_weight"] == 2.0
    meta = json.loads((tmp_path / "out" / "model-last" / "meta.json").read_text())
    per_type = meta["performance"]["ents_per_type"]
    assert per_type["CHEM"]["f"] == 1.0 and per_type["DIS"]["f"] > 0.0
