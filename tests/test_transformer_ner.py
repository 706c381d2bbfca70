import numpy
import pytest
import spacy
from spacy.tokens import DocBin, Span
from thinc.api import fix_random_seed

from conftest import TRAIN_DATA
from util import ents, examples, make_nlp, train

BACKBONES = ["tok2vec", "transformer"]
DECODERS = ["crf", "softmax"]


@pytest.fixture(params=[(b, d) for b in BACKBONES for d in DECODERS], ids=lambda p: "-".join(p))
def trained(request, tiny_bert_dir):
    backbone, decoder = request.param
    fix_random_seed(0)
    nlp = make_nlp(backbone, decoder=decoder, model_dir=tiny_bert_dir)
    train(nlp, TRAIN_DATA, steps=60 if backbone == "tok2vec" else 120)
    return nlp


def test_overfit_save_and_reload(trained, tmp_path):
    for text, gold in TRAIN_DATA:
        assert ents(trained(text)) == sorted(gold)
    trained.to_disk(tmp_path / "model")
    reloaded = spacy.load(tmp_path / "model")
    for text, _ in TRAIN_DATA:
        a, b = trained(text), reloaded(text)
        assert ents(a) == ents(b)
        assert [e._.ner_confidence for e in a.ents] == pytest.approx([e._.ner_confidence for e in b.ents])
    assert reloaded.get_pipe("transformer_ner").labels == ("CHEM", "DIS")


def test_bytes_round_trip(trained):
    ner = trained.get_pipe("transformer_ner")
    data = trained.to_bytes()
    other = spacy.blank("en").from_config(trained.config)
    other.from_bytes(data)
    text = TRAIN_DATA[1][0]
    assert ents(other(text)) == ents(trained(text))
    assert other.get_pipe("transformer_ner").cfg == ner.cfg


def test_pipe_equals_call(trained):
    texts = [t for t, _ in TRAIN_DATA] * 3 + ["", "   ", "caffeine"]
    piped = list(trained.pipe(texts, batch_size=4))
    for text, doc in zip(texts, piped):
        single = trained(text)
        assert ents(doc) == ents(single)
        assert [e._.ner_confidence for e in doc.ents] == pytest.approx(
            [e._.ner_confidence for e in single.ents], abs=1e-5
        )


def test_confidences_valid_and_survive_docbin(trained):
    docs = list(trained.pipe([t for t, _ in TRAIN_DATA]))
    for doc in docs:
        scores = doc.spans["transformer_ner"].attrs["scores"]
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert all(e._.ner_confidence is not None for e in doc.ents)
    db = DocBin(docs=docs)
    restored = list(DocBin().from_bytes(db.to_bytes()).get_docs(trained.vocab))
    for a, b in zip(docs, restored):
        assert [e._.ner_confidence for e in a.ents] == [e._.ner_confidence for e in b.ents]


def test_scores_with_spacy_scorer(trained):
    scores = trained.evaluate(examples(trained, TRAIN_DATA))
    assert scores["ents_f"] == 1.0
    assert set(scores["ents_per_type"]) == {"CHEM", "DIS"}


def test_threshold_drops_entities_but_keeps_scored_spans(tiny_bert_dir):
    fix_random_seed(0)
    nlp = make_nlp("tok2vec", threshold=1.0)
    train(nlp, TRAIN_DATA, steps=5)
    doc = nlp(TRAIN_DATA[0][0])
    group = doc.spans["transformer_ner"]
    kept = [s for s, c in zip(group, group.attrs["scores"]) if c >= 1.0]
    assert list(doc.ents) == kept


@pytest.mark.parametrize("mode", ["respect", "overwrite"])
def test_existing_entities(mode):
    fix_random_seed(0)
    nlp = make_nlp("tok2vec", ents_mode=mode)
    train(nlp, TRAIN_DATA, steps=60)
    doc = nlp.make_doc(TRAIN_DATA[0][0])
    doc.ents = [Span(doc, 2, 3, label="PRESET")]  # "headache"
    doc = nlp.get_pipe("tok2vec")(doc)
    doc = nlp.get_pipe("transformer_ner")(doc)
    labels = {(e.text, e.label_) for e in doc.ents}
    if mode == "respect":
        assert labels == {("Aspirin", "CHEM"), ("headache", "PRESET")}
    else:
        assert labels == {("Aspirin", "CHEM"), ("headache", "DIS")}


def test_iob_scheme_trains(tiny_bert_dir):
    fix_random_seed(0)
    nlp = make_nlp("tok2vec", scheme="IOB")
    train(nlp, TRAIN_DATA, steps=60)
    assert nlp.get_pipe("transformer_ner").tagset.tags[1:3] == ("B-CHEM", "I-CHEM")
    for text, gold in TRAIN_DATA:
        assert ents(nlp(text)) == sorted(gold)


def test_same_seed_same_model():
    results = []
    for _ in range(2):
        fix_random_seed(1)
        nlp = make_nlp("tok2vec")
        train(nlp, TRAIN_DATA, steps=10)
        doc = nlp(TRAIN_DATA[3][0])
        results.append((ents(doc), doc.spans["transformer_ner"].attrs["scores"]))
    assert results[0] == results[1]


def test_missing_gold_tags_are_not_penalised():
    """A doc whose entities are unannotated (missing) must not teach "O"."""
    fix_random_seed(0)
    nlp = make_nlp("tok2vec")
    egs = examples(nlp, TRAIN_DATA)
    ner = nlp.get_pipe("transformer_ner")
    nlp.initialize(lambda: egs)
    doc = nlp.get_pipe("tok2vec")(nlp.make_doc("Aspirin causes headache"))
    from spacy.training import Example

    missing = Example(doc, nlp.make_doc("Aspirin causes headache"))  # no ents set: all "-"
    scores = ner.model.predict([doc])
    loss, grad = ner.get_loss([missing], scores)
    assert loss == pytest.approx(0.0, abs=1e-9)
    assert numpy.abs(grad.emissions[0]).max() == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("decoder", DECODERS)
def test_weak_labels_make_missing_tokens_partial_labels(decoder):
    """On a silver doc, a missing token is "none of the weak labeller's
    labels": a model that puts mass on DIS there is penalised, one that
    puts it on CHEM is not, and the gradient is that of the loss."""
    from spacy.training import Example

    fix_random_seed(0)
    nlp = make_nlp("tok2vec", decoder=decoder)
    ner = nlp.get_pipe("transformer_ner")
    nlp.initialize(lambda: examples(nlp, TRAIN_DATA))
    text = "Aspirin causes headache"
    doc = nlp.get_pipe("tok2vec")(nlp.make_doc(text))
    scores = ner.model.predict([doc])
    tagset = ner.tagset

    def loss_of(weak_labels, emissions=None):
        reference = nlp.make_doc(text)
        if weak_labels is not None:
            reference.user_data["weak_labels"] = weak_labels
        s = scores if emissions is None else scores._replace(emissions=[ner.model.ops.asarray2f(emissions)])
        return ner.get_loss([Example(doc, reference)], s)

    assert loss_of(None)[0] == pytest.approx(0.0, abs=1e-9)
    loss, grad = loss_of(["DIS"])
    assert loss > 1e-3 and numpy.abs(grad.emissions[0]).max() > 1e-6
    # Raising a DIS tag's score raises the loss, raising a CHEM one's does not.
    base = numpy.asarray(scores.emissions[0], dtype="f8")
    for tag, sign in (("U-DIS", 1), ("U-CHEM", -1)):
        pushed = base.copy()
        pushed[:, tagset.index[tag]] += 3.0
        assert sign * (loss_of(["DIS"], pushed)[0] - loss) > 0
    # Tokens a stop-listed hit or an open word covers stay fully open.
    for group in ("weak_stoplisted", "weak_open"):
        reference = nlp.make_doc(text)
        reference.user_data["weak_labels"] = ["DIS"]
        reference.spans[group] = [reference[2:3]]
        _, open_grad = ner.get_loss([Example(doc, reference)], scores)
        assert not numpy.allclose(open_grad.emissions[0][2], grad.emissions[0][2])
        if decoder == "softmax":  # the CRF couples it to its constrained neighbours
            assert numpy.abs(open_grad.emissions[0][2]).max() == pytest.approx(0.0, abs=1e-6)
    # Finite differences agree with the gradient on one emission.
    eps, column = 1e-3, tagset.index["B-DIS"]
    shifted = base.copy()
    shifted[1, column] += eps
    numeric = (loss_of(["DIS"], shifted)[0] - loss) / eps
    assert numeric == pytest.approx(float(grad.emissions[0][1, column]), rel=0.05, abs=1e-4)


def test_tags_without_labels():
    from spacy_llm_ner.ml.tags import TagSet

    tagset = TagSet(("Chemical", "Disease"))
    kept = [tag for tag, ok in zip(tagset.tags, tagset.tags_without(["Disease", "Other"])) if ok]
    assert kept == ["O", "B-Chemical", "I-Chemical", "L-Chemical", "U-Chemical"]
    assert tagset.tags_without([]).all()


def test_chinese_characters_with_cnn():
    data = [
        ("阿司匹林导致头痛。", [(0, 4, "CHEM"), (6, 8, "DIS")]),
        ("顺铂引起肾衰竭。", [(0, 2, "CHEM"), (4, 7, "DIS")]),
    ]
    fix_random_seed(0)
    nlp = make_nlp("tok2vec", lang="zh")
    assert nlp.tokenizer.segmenter == "char"
    train(nlp, data, steps=60)
    for text, gold in data:
        assert ents(nlp(text)) == sorted(gold)


@pytest.mark.parametrize(
    "option,value,message",
    [
        ("decoder", "viterbi", "Unknown decoder 'viterbi'"),
        ("scheme", "BIOES", "Unknown scheme 'BIOES'"),
        ("ents_mode", "merge", "Unknown ents_mode"),
        ("threshold", 1.5, "threshold must be in"),
    ],
)
def test_config_errors_are_clear(option, value, message):
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec")
    with pytest.raises(ValueError, match=message):
        nlp.add_pipe(
            "transformer_ner",
            config={option: value, "model": {"tok2vec": {"@architectures": "spacy.Tok2VecListener.v1", "width": 96}}},
        )


def test_labels_that_disagree_with_data_are_an_error():
    nlp = make_nlp("tok2vec")
    egs = examples(nlp, TRAIN_DATA)
    nlp.config["initialize"]["components"]["transformer_ner"] = {"labels": ["CHEM"]}
    with pytest.raises(ValueError, match=r"labels \['DIS'\] that are not in the configured labels"):
        nlp.initialize(lambda: egs)


def test_labels_from_config_without_entities_in_data():
    nlp = make_nlp("tok2vec")
    egs = examples(nlp, [("nothing here", [])])
    nlp.config["initialize"]["components"]["transformer_ner"] = {"labels": ["A", "B"]}
    nlp.initialize(lambda: egs)
    assert nlp.get_pipe("transformer_ner").labels == ("A", "B")


def test_no_labels_is_an_error():
    nlp = make_nlp("tok2vec")
    with pytest.raises(ValueError, match="No entity labels"):
        nlp.initialize(lambda: examples(nlp, [("nothing here", [])]))


def test_long_document_is_tagged_end_to_end(tiny_bert_dir):
    """Far more tokens than one transformer window: strided spans cover it,
    and entities in every window (and across window edges) are found."""
    fix_random_seed(0)
    nlp = make_nlp("transformer", model_dir=tiny_bert_dir)
    train(nlp, TRAIN_DATA, steps=120)
    text, gold = "", set()
    for _ in range(40):
        for sentence, ents_ in TRAIN_DATA:
            offset = len(text)
            gold.update((offset + s, offset + e, label) for s, e, label in ents_)
            text += sentence + " "
    doc = nlp(text)
    assert len(doc) > 1000
    found = set(ents(doc))
    assert len(found & gold) >= 0.9 * len(gold)
    assert len(found & gold) >= 0.9 * len(found)


def test_displacy_renders(trained):
    from spacy import displacy

    html = displacy.render(trained(TRAIN_DATA[0][0]), style="ent", page=True)
    assert "CHEM" in html and "Aspirin" in html


@pytest.mark.parametrize("backbone", BACKBONES)
def test_multiprocess_pipe_equals_single_process(backbone, tiny_bert_dir):
    fix_random_seed(0)
    nlp = make_nlp(backbone, model_dir=tiny_bert_dir)
    train(nlp, TRAIN_DATA, steps=60 if backbone == "tok2vec" else 120)
    texts = [t for t, _ in TRAIN_DATA] * 4
    single = [ents(doc) for doc in nlp.pipe(texts)]
    multi = [ents(doc) for doc in nlp.pipe(texts, n_process=2, batch_size=3)]
    assert multi == single
