"""Lexical hash-embedding and gazetteer features beside the tok2vec
(spacy_llm_ner.FeatureTok2Vec.v1) and their use in transformer_ner."""
import numpy
import pytest
import spacy
import util
from thinc.api import fix_random_seed

from spacy_llm_ner.kb import EntityRecord
from spacy_llm_ner.ml.features import GAZETTEER, alias_key, build_feature_tok2vec, fill_gazetteer, match

RECORDS = [
    EntityRecord("D1", "renal failure", aliases=["acute renal failure", "ARF"], type="Disease"),
    EntityRecord("D2", "failure", type="Disease"),
    EntityRecord("C1", "lithium", aliases=["lithium carbonate"], type="Chemical"),
    EntityRecord("X1", "Lithium", type="Disease"),  # the same name under two types
]
DATA = [
    ("Lithium caused acute renal failure in two rats.", [(0, 7, "CHEM"), (15, 34, "DIS")]),
    ("Zorbium caused flurosis in one rat.", [(0, 7, "CHEM"), (15, 23, "DIS")]),
    ("No change was seen.", []),
]
NER_FEATURES = {
    "@architectures": "spacy_llm_ner.FeatureTok2Vec.v1",
    "tok2vec": {"@architectures": "spacy.Tok2VecListener.v1", "width": 96},
    "width": 16,
    "gazetteer": True,
}


def gazetteer_layer(nlp, records=RECORDS, **kwargs):
    model = build_feature_tok2vec(_inner(), attrs=(), rows=(), gazetteer=True, **kwargs)
    layer = next(node for node in model.walk() if node.name == GAZETTEER)
    counts = fill_gazetteer(layer, [(n, r.type) for r in records for n in r.all_names()], make_doc=nlp.make_doc)
    return model, layer, counts


def _inner():
    from spacy.ml.models.tok2vec import build_hash_embed_cnn_tok2vec

    return build_hash_embed_cnn_tok2vec(
        width=32, depth=1, embed_size=300, window_size=1, maxout_pieces=3, subword_features=True, pretrained_vectors=None
    )


def test_gazetteer_longest_match_and_positions():
    nlp = spacy.blank("en")
    _, layer, counts = gazetteer_layer(nlp)
    assert layer.attrs["types"] == ["Chemical", "Disease"]
    assert counts == {"Chemical": 2, "Disease": 5}
    doc = nlp("LITHIUM carbonate and Acute renal failure , then failure and arf .")
    feats = match(doc, layer.attrs["aliases"], 2, 8)
    chem, dis = feats[:, :4], feats[:, 4:]
    # "LITHIUM carbonate": the longest match (a Chemical); the shorter
    # "Lithium" (both types) is not matched inside it.
    assert chem[0].tolist() == [1, 0, 0, 0] and chem[1].tolist() == [0, 0, 1, 0]
    assert not dis[:2].any()
    # "Acute renal failure": B I L; the nested "failure" is not marked again.
    assert dis[3].tolist() == [1, 0, 0, 0] and dis[4].tolist() == [0, 1, 0, 0] and dis[5].tolist() == [0, 0, 1, 0]
    assert dis[8].tolist() == [0, 0, 0, 1] and dis[10].tolist() == [0, 0, 0, 1]  # "failure", "arf": units
    assert not feats[[2, 6, 7, 9, 11]].any()
    assert match(nlp("Lithium"), layer.attrs["aliases"], 2, 8).tolist() == [[0, 0, 0, 1, 0, 0, 0, 1]]


def test_gazetteer_type_filter_and_length_limit():
    nlp = spacy.blank("en")
    _, layer, counts = gazetteer_layer(nlp, gazetteer_types=["Disease"], max_alias_tokens=2)
    assert layer.attrs["types"] == ["Disease"] and layer.get_dim("nO") == 4
    assert counts == {"Disease": 4}  # "acute renal failure" is 3 tokens
    assert alias_key(["Acute", "renal", "failure"]) not in layer.attrs["aliases"]
    feats = match(nlp("acute renal failure"), layer.attrs["aliases"], 1, 2)
    assert feats[:, 0].tolist() == [0, 1, 0] and feats[:, 2].tolist() == [0, 0, 1]


def test_feature_tok2vec_shapes_gradients_and_bytes():
    nlp = spacy.blank("en")
    model, layer, _ = gazetteer_layer(nlp)
    docs = [nlp("Lithium caused acute renal failure."), nlp("x")]
    model.initialize(X=docs)
    Y, backprop = model.begin_update(docs)
    assert [y.shape for y in Y] == [(6, 32 + 8), (1, 32 + 8)]
    backprop([numpy.ones_like(y) for y in Y])
    grads = [g for node in model.walk() for name in node.param_names if node.has_grad(name) for g in [node.get_grad(name)]]
    assert grads and any(abs(g).sum() > 0 for g in grads)
    other = build_feature_tok2vec(_inner(), attrs=(), rows=(), gazetteer=True).from_bytes(model.to_bytes())
    assert all(numpy.array_equal(a, b) for a, b in zip(other.predict(docs), model.predict(docs)))


def test_lexical_features_width():
    nlp = spacy.blank("en")
    model = build_feature_tok2vec(_inner(), width=24, depth=1)
    docs = [nlp("Hydrochlorothiazide and lithium.")]
    model.initialize(X=docs)
    assert model.predict(docs)[0].shape == (4, 32 + 24)
    with pytest.raises(ValueError, match="same length"):
        build_feature_tok2vec(_inner(), attrs=("NORM",), rows=(10, 20))


def fit(nlp, *, kb_path=None, steps=40):
    egs = util.examples(nlp, DATA)
    if kb_path is not None:
        loader = {"@misc": "spacy_llm_ner.load_kb_jsonl.v1", "path": str(kb_path)}
        nlp.config["initialize"]["components"]["transformer_ner"] = {"gazetteer": loader}
    optimizer = nlp.initialize(lambda: egs)
    optimizer.learn_rate = 0.002
    for _ in range(steps):
        nlp.update(egs, sgd=optimizer, losses={})
    return egs


@pytest.fixture()
def kb_file(tmp_path):
    import json

    path = tmp_path / "kb.jsonl"
    path.write_text(
        "\n".join(json.dumps({"id": r.id, "name": r.name, "aliases": r.aliases, "type": r.type}) for r in RECORDS),
        encoding="utf8",
    )
    return path


def test_ner_with_features_overfits_reloads_and_pipes(kb_file, tmp_path):
    fix_random_seed(0)
    nlp = util.make_nlp("tok2vec", model={"tok2vec": NER_FEATURES})
    fit(nlp, kb_path=kb_file)
    for text, ents in DATA:
        assert util.ents(nlp(text)) == ents
    table = next(n for n in nlp.get_pipe("transformer_ner").model.walk() if n.name == GAZETTEER).attrs["aliases"]
    assert table[alias_key(["acute", "renal", "failure"])]
    kb_file.unlink()  # the table is saved with the pipeline, the KB file is not needed
    nlp.to_disk(tmp_path / "model")
    reloaded = spacy.load(tmp_path / "model")
    texts = [t for t, _ in DATA] * 2
    for doc, text in zip(reloaded.pipe(texts, batch_size=2), texts):
        assert util.ents(doc) == util.ents(nlp(text)) == util.ents(reloaded(text))


def test_gazetteer_without_layer_is_an_error(kb_file):
    nlp = util.make_nlp("tok2vec")
    with pytest.raises(ValueError, match="has no gazetteer layer"):
        fit(nlp, kb_path=kb_file, steps=0)


def test_gazetteer_layer_without_kb_warns_and_works():
    fix_random_seed(0)
    nlp = util.make_nlp("tok2vec", model={"tok2vec": NER_FEATURES})
    with pytest.warns(UserWarning, match="has gazetteer features but no gazetteer KB"):
        fit(nlp, steps=30)
    assert util.ents(nlp(DATA[0][0])) == DATA[0][1]


def test_fresh_feature_layers_step_at_the_head_rate():
    """head_lr_scale applies to the head and to the feature layers beside the
    backbone; only the backbone (the innermost tok2vec) keeps the base rate."""
    from thinc.api import Adam

    from spacy_llm_ner.ml.models import TagScores, build_token_classifier
    from spacy_llm_ner.ml.optim import finish_update_with_head_scale

    nlp = spacy.blank("en")
    inner = _inner()
    features = build_feature_tok2vec(inner, width=8)
    model = build_token_classifier(features, nO=3)
    docs = [nlp("Lithium caused acute renal failure.")]
    model.initialize(X=docs)
    rng = numpy.random.default_rng(0)
    out = model.get_ref("output_layer")  # zero-initialised: no gradient would reach the tok2vec
    out.set_param("W", rng.normal(size=out.get_param("W").shape).astype("f"))
    scores, backprop = model.begin_update(docs)
    backprop(TagScores([rng.normal(size=e.shape).astype("f") for e in scores.emissions],
                       rng.normal(size=scores.transitions.shape).astype("f"),
                       rng.normal(size=scores.start.shape).astype("f"), rng.normal(size=scores.end.shape).astype("f")))
    inner_ids = {node.id for node in inner.walk()}
    group = {n.id: "features" for n in features.walk()} | {i: "backbone" for i in inner_ids}
    before = {(n.id, p): n.get_param(p).copy() for n in model.walk() for p in n.param_names if n.has_param(p)}
    finish_update_with_head_scale(model, Adam(0.001, L2=0.0, grad_clip=0.0), head_lr_scale=10.0)
    steps = {"backbone": 0.0, "features": 0.0, "head": 0.0}
    for node in model.walk():
        for name in node.param_names:
            if (node.id, name) in before:
                key = group.get(node.id, "head")
                moved = float(abs(node.get_param(name) - before[(node.id, name)]).max())
                steps[key] = max(steps[key], moved)
    assert steps == pytest.approx({"backbone": 0.001, "features": 0.01, "head": 0.01}, rel=0.05)
