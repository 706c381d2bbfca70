"""Knowledge distillation: teacher distributions stored on docs, aligned to
the student's tokens, and a student that learns from them alone."""
import numpy
import pytest
import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from thinc.api import fix_random_seed
from typer.testing import CliRunner

from conftest import TRAIN_DATA
from util import ents, make_nlp, train
from spacy_llm_ner.cli import app
from spacy_llm_ner.ml.decoders import make_decoder
from spacy_llm_ner.ml.models import TagScores
from spacy_llm_ner.ml.tags import TagSet
from spacy_llm_ner.training import distill_corpus, get_soft_tags, set_soft_tags, soft_targets

TEXTS = [text for text, _ in TRAIN_DATA]


@pytest.fixture(scope="module")
def teacher():
    fix_random_seed(0)
    nlp = make_nlp("tok2vec")
    train(nlp, TRAIN_DATA, steps=60, learn_rate=0.005)
    return nlp


def _scores(emissions, n_tags):
    return TagScores(
        emissions=[numpy.asarray(e, dtype="f") for e in emissions],
        transitions=numpy.zeros((n_tags, n_tags), dtype="f"),
        start=numpy.zeros(n_tags, dtype="f"),
        end=numpy.zeros(n_tags, dtype="f"),
    )


def test_soft_targets_align_by_characters_and_map_tags():
    nlp = spacy.blank("en")
    teacher_doc = Doc(nlp.vocab, words=["renal", "failure", "."], spaces=[True, False, False])
    student_doc = Doc(nlp.vocab, words=["renal", "failure."], spaces=[True, False])
    tags = ["O", "B-DIS", "I-DIS"]
    probs = numpy.asarray([[0.1, 0.8, 0.1], [0.2, 0.1, 0.7], [0.9, 0.05, 0.05]])
    set_soft_tags(teacher_doc, teacher_doc, probs, tags)
    eg = Example(student_doc, teacher_doc)
    got = soft_targets(eg, ["O", "I-DIS", "B-DIS", "B-CHEM"])
    assert got.shape == (2, 4)
    # "renal" matches; "failure." has no teacher token with its offsets.
    assert numpy.allclose(got[0], [0.1, 0.1, 0.8, 0.0], atol=1e-3)
    assert numpy.isnan(got[1]).all()
    with pytest.raises(ValueError, match="not among the student's tags"):
        soft_targets(eg, ["O", "B-DIS"])


def test_soft_tags_survive_docbin():
    nlp = spacy.blank("en")
    doc = nlp.make_doc("Aspirin causes headache.")
    probs = numpy.random.default_rng(0).dirichlet(numpy.ones(3), size=len(doc))
    set_soft_tags(doc, doc, probs, ["O", "U-A", "U-B"])
    restored = list(DocBin(docs=[doc], store_user_data=True).get_docs(nlp.vocab))[0]
    stored = get_soft_tags(restored)
    assert stored["tags"] == ["O", "U-A", "U-B"]
    assert numpy.allclose(stored["probs"], probs, atol=1e-3)


@pytest.mark.parametrize("decoder", ["softmax", "crf"])
def test_soft_loss_is_zero_at_the_target_and_its_gradient_is_exact(decoder):
    tagset = TagSet(("A", "B"), "BILUO")
    dec = make_decoder(decoder, tagset)
    rng = numpy.random.default_rng(1)
    emissions = rng.normal(size=(5, len(tagset)))
    own = dec.token_marginals(_scores([emissions], len(tagset)))[0]
    loss, grads = dec.get_soft_loss(_scores([emissions], len(tagset)), [own])
    assert loss == pytest.approx(0.0, abs=1e-4) and numpy.abs(grads[0]).max() < 1e-5
    target = rng.dirichlet(numpy.ones(len(tagset)), size=5)
    target[2] = numpy.nan  # a token without a target: no gradient
    _, grads = dec.get_soft_loss(_scores([emissions], len(tagset)), [target])
    assert numpy.all(grads[0][2] == 0.0)
    if decoder == "softmax":
        # Finite differences of the KL, summed over the targeted tokens.
        def kl(e):
            return dec.get_soft_loss(_scores([e], len(tagset)), [target])[0]

        i, t, eps = 1, 3, 1e-3
        bumped = emissions.copy()
        bumped[i, t] += eps
        numeric = (kl(bumped) - kl(emissions)) / eps
        assert numeric == pytest.approx(grads[0][i, t], abs=1e-2)


@pytest.mark.parametrize("decoder", ["softmax", "crf"])
def test_student_learns_from_the_teacher_alone_and_reloads(teacher, tmp_path, decoder):
    """Raw text labelled by the teacher (no gold at all) teaches a fresh
    student the teacher's entities; the student saves and reloads."""
    corpus = list(distill_corpus(teacher, texts=TEXTS))
    assert all(not doc.has_annotation("ENT_IOB") for doc in corpus)
    fix_random_seed(1)
    student = make_nlp("tok2vec", decoder=decoder)
    egs = [Example(student.make_doc(doc.text), doc) for doc in corpus]
    student.initialize(lambda: [Example.from_dict(student.make_doc(t), {"entities": e}) for t, e in TRAIN_DATA])
    optimizer = student.resume_training()
    optimizer.learn_rate = 0.005
    losses = {}
    for _ in range(60):
        losses = student.update(egs, sgd=optimizer, losses={})
    assert losses["transformer_ner"] > 0
    expected = [ents(teacher(t)) for t in TEXTS]
    assert [ents(student(t)) for t in TEXTS] == expected
    assert any(expected)
    student.to_disk(tmp_path / "student")
    reloaded = spacy.load(tmp_path / "student")
    assert [ents(d) for d in reloaded.pipe(TEXTS)] == expected


def test_without_distributions_the_loss_is_the_gold_loss(teacher):
    eg = Example.from_dict(teacher.make_doc(TEXTS[0]), {"entities": TRAIN_DATA[0][1]})
    ner = teacher.get_pipe("transformer_ner")
    scores = ner.model.predict([eg.predicted])
    plain, _ = ner.get_loss([eg], scores)
    labelled = list(distill_corpus(teacher, docs=[eg.reference]))[0]
    with_teacher, _ = ner.get_loss([Example(eg.predicted, labelled)], scores)
    assert with_teacher >= plain  # the KL term is added, never negative
    ner.cfg["distill_weight"] = 0.0
    try:
        off, _ = ner.get_loss([Example(eg.predicted, labelled)], scores)
    finally:
        ner.cfg["distill_weight"] = 1.0
    assert off == pytest.approx(plain)


def test_distill_corpus_cli(teacher, tmp_path):
    teacher.to_disk(tmp_path / "teacher")
    gold = DocBin(docs=[Example.from_dict(teacher.make_doc(t), {"entities": e}).reference for t, e in TRAIN_DATA])
    gold.to_disk(tmp_path / "train.spacy")
    (tmp_path / "raw.txt").write_text("Lithium causes renal failure.\n\nCaffeine.\n", encoding="utf8")
    (tmp_path / "raw.jsonl").write_text('{"text": "Aspirin again."}\n{"txt": 1}\n', encoding="utf8")
    runner = CliRunner()
    out = tmp_path / "distill.spacy"
    result = runner.invoke(app, ["distill-corpus", str(tmp_path / "teacher"), str(out),
                                 "--docs", str(tmp_path / "train.spacy"), "--text", str(tmp_path / "raw.txt")])
    assert result.exit_code == 0, result.output
    docs = list(DocBin().from_disk(out).get_docs(teacher.vocab))
    assert len(docs) == len(TRAIN_DATA) + 2
    assert all(get_soft_tags(d)["probs"].shape[0] == len(d) for d in docs)
    assert [ents(d) for d in docs[: len(TRAIN_DATA)]] == [sorted((s, e, l) for s, e, l in ents_) for _, ents_ in TRAIN_DATA]
    bad = runner.invoke(app, ["distill-corpus", str(tmp_path / "teacher"), str(out),
                              "--text", str(tmp_path / "raw.jsonl")])
    assert bad.exit_code != 0
    assert "raw.jsonl, line 2, field 'text'" in str(bad.exception)


def test_weak_labels_and_teacher_distributions_add_up(teacher):
    """Silver docs labelled by a teacher (the learning curve's "teacher +
    silver"): the weak labels survive distill-corpus and DocBin, and the
    loss is the partial-label loss plus distill_weight x the KL term."""
    from spacy_llm_ner.training.weak import LABELS_KEY, SILVER_KEY

    text, gold = TRAIN_DATA[1]
    silver = teacher.make_doc(text)
    silver.set_ents([silver.char_span(s, e, label=l) for s, e, l in gold if l == "DIS"], default="missing")
    silver.user_data.update({SILVER_KEY: True, LABELS_KEY: ["DIS"]})
    labelled = list(distill_corpus(teacher, docs=[silver]))[0]
    labelled = list(DocBin(docs=[labelled], store_user_data=True).get_docs(teacher.vocab))[0]
    assert list(labelled.user_data[LABELS_KEY]) == ["DIS"] and labelled.user_data[SILVER_KEY]
    assert ents(labelled) == [(s, e, l) for s, e, l in gold if l == "DIS"]
    ner = teacher.get_pipe("transformer_ner")
    eg = Example(teacher.make_doc(text), labelled)
    scores = ner.model.predict([eg.predicted])
    both, _ = ner.get_loss([eg], scores)
    ner.cfg["distill_weight"] = 0.0
    try:
        weak, _ = ner.get_loss([eg], scores)
    finally:
        ner.cfg["distill_weight"] = 1.0
    kl, _ = ner.decoder.get_soft_loss(scores, [soft_targets(eg, ner.tagset.tags)])
    assert kl > 0 and both == pytest.approx(weak + kl, rel=1e-5)
    # The partial labels count: without them the outside tokens are fully open.
    del labelled.user_data[LABELS_KEY]
    ner.cfg["distill_weight"] = 0.0
    try:
        open_, _ = ner.get_loss([Example(eg.predicted, labelled)], scores)
    finally:
        ner.cfg["distill_weight"] = 1.0
    assert open_ != pytest.approx(weak)
