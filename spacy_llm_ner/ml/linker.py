"""Thinc model for the `transformer_entity_linker`: a bi-encoder over the
shared backbone plus a linear layer over candidate features.

Mentions and entities are encoded by the same tok2vec (the pipeline's
transformer or Tok2Vec, through a listener):

- mention = [mean of the mention's token vectors; mean of the token vectors
  in a window of `context_window` tokens either side, within the sentence
  when sentence boundaries are set], projected to `hidden_width` and
  L2-normalised;
- entity = mean of the token vectors of the entity's text (name and
  description), computed by the component with the backbone in predict mode
  and passed in as a constant, projected by its own linear layer and
  L2-normalised.

The score of a (mention, entity) pair is `scale * cosine(mention, entity)`
(`scale` learned) plus `features @ w` over the candidate's string evidence
(see `FEATURES`). The NIL option scores `scale * cosine(mention, nil_vector)
+ nil_bias`, with a learned NIL vector, so whether a mention is out of the
KB depends on its context, not only on a constant. Because an entity is
represented by its text through the backbone (not by a learned embedding
per id), entities added to the KB after training are scored like the ones
seen in training.
"""
import math
from typing import Callable, List, NamedTuple, Sequence, Tuple

import numpy
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Linear, Model
from thinc.types import Floats1d, Floats2d, Ints2d

# Per-candidate features from the KB cascade, in column order.
FEATURES: Tuple[str, ...] = (
    "prior",  # P(entity | alias) of the matched name
    "score",  # string similarity of the cascade (1.0 exact / normalised)
    "exact",  # source one-hot ...
    "normalized",
    "ngram",
    "abbreviation",
    "top_rank",  # ranked first by the cascade
    "inverse_n_candidates",  # 1 / number of candidates of the mention
)
_SOURCES = ("exact", "normalized", "ngram", "abbreviation")
_COLUMN = {name: i for i, name in enumerate(FEATURES)}
MAX_SCALE = 30.0
# Initial feature weights: an untrained linker follows the cascade's own
# ranking (string score, then rank, then prior) and prefers a candidate to
# NIL, so training starts from the string-matching baseline rather than from
# noise; NIL must be learned from NIL-labelled mentions.
INIT_FEATURE_WEIGHTS = numpy.asarray(
    [{"prior": 1.0, "score": 2.0, "top_rank": 2.0}.get(name, 0.0) for name in FEATURES], dtype="f"
)


class LinkerInput(NamedTuple):
    """Input of the linker model.

    docs (List[Doc]): The batch.
    mentions (List[Ints2d]): Per doc, (n, 2) token offsets [start, end) of
        its mentions; mentions are numbered in doc order across the batch.
    entities (Floats2d): (E, width) backbone encodings of the batch's
        candidate entities (constants: no gradient flows into them).
    features (Floats2d): (C, len(FEATURES)) features of all candidates of
        all mentions, in mention order.
    """

    docs: List[Doc]
    mentions: List[Ints2d]
    entities: Floats2d
    features: Floats2d


class LinkerScores(NamedTuple):
    """Output of the linker model (all logits; the component combines them).

    similarity (Floats2d): (M, E) scaled cosine of each mention with each
        batch entity.
    nil (Floats1d): (M,) NIL logit of each mention.
    features (Floats1d): (C,) feature logit of each candidate.
    """

    similarity: Floats2d
    nil: Floats1d
    features: Floats1d


def candidate_features(candidates: Sequence) -> numpy.ndarray:
    """Feature rows for one mention's candidates (ScoredCandidates, best
    first).

    candidates (Sequence[ScoredCandidate]): The cascade's candidates.
    RETURNS (numpy.ndarray): (len(candidates), len(FEATURES)) float32.
    """
    out = numpy.zeros((len(candidates), len(FEATURES)), dtype="f")
    if not len(candidates):
        return out
    out[:, _COLUMN["prior"]] = [float(c.prior) for c in candidates]
    out[:, _COLUMN["score"]] = [float(c.score) for c in candidates]
    for i, cand in enumerate(candidates):
        if cand.source in _SOURCES:
            out[i, _COLUMN[cand.source]] = 1.0
    out[0, _COLUMN["top_rank"]] = 1.0
    out[:, _COLUMN["inverse_n_candidates"]] = 1.0 / len(candidates)
    return out


@registry.architectures("spacy_llm_ner.EntityLinkerModel.v1")
def build_entity_linker_model(
    tok2vec: Model[List[Doc], List[Floats2d]],
    *,
    hidden_width: int = 128,
    context_window: int = 32,
    dropout: float = 0.1,
    init_scale: float = 10.0,
) -> Model[LinkerInput, LinkerScores]:
    """Mention-entity scorer over any tok2vec (a spacy-transformers listener,
    spaCy's Tok2Vec listener, or an inline tok2vec).

    tok2vec (Model[List[Doc], List[Floats2d]]): One vector per token.
    hidden_width (int): Width of the projected mention and entity vectors.
    context_window (int): Tokens either side of a mention pooled as its
        context (clipped to the sentence when sentences are set); -1: the
        whole sentence (or doc).
    dropout (float): Dropout on the pooled mention vector in training.
    init_scale (float): Initial cosine scale (the softmax temperature's
        inverse); learned, at most 30.
    RETURNS (Model[LinkerInput, LinkerScores]): The model.
    """
    if hidden_width < 1:
        raise ValueError(f"hidden_width must be >= 1, got {hidden_width}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    if not 1.0 <= init_scale <= MAX_SCALE:
        raise ValueError(f"init_scale must be in [1, {MAX_SCALE}], got {init_scale}.")
    mention_layer = Linear(nO=hidden_width)
    entity_layer = Linear(nO=hidden_width)
    model = Model(
        "entity_linker_scorer",
        _forward,
        init=_init,
        layers=[tok2vec, mention_layer, entity_layer],
        dims={"nO": hidden_width, "nF": len(FEATURES)},
        params={"log_scale": None, "nil_vector": None, "nil_bias": None, "feature_W": None},
        attrs={"context_window": int(context_window), "dropout": float(dropout), "init_scale": float(init_scale)},
    )
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("mention_layer", mention_layer)
    model.set_ref("entity_layer", entity_layer)
    return model


def _init(model: Model, X: LinkerInput = None, Y=None) -> None:
    tok2vec = model.get_ref("tok2vec")
    if X is not None:
        tok2vec.initialize(X=X.docs)
        width = int(X.entities.shape[1])
    else:
        tok2vec.initialize()
        width = tok2vec.get_dim("nO")
    n_hidden = model.get_dim("nO")
    for ref, n_in in (("mention_layer", 2 * width), ("entity_layer", width)):
        layer = model.get_ref(ref)
        layer.set_dim("nI", n_in, force=True)
        layer.initialize()
    ops = model.ops
    model.set_param("log_scale", ops.asarray1f([math.log(model.attrs["init_scale"])]))
    model.set_param("nil_bias", ops.alloc1f(1))
    # A copy: asarray1f returns the module constant itself, which the
    # optimizer would then update in place, so that every later linker in the
    # process started from the last one's trained weights.
    model.set_param("feature_W", ops.asarray1f(INIT_FEATURE_WEIGHTS.copy()))
    nil = numpy.random.normal(scale=1.0 / math.sqrt(n_hidden), size=(n_hidden,)).astype("f")
    model.set_param("nil_vector", ops.asarray1f(nil))


def _bounds(docs: List[Doc], mentions: List, window: int) -> List[numpy.ndarray]:
    """Per doc, (n, 4) int arrays: mention start, end, context start, end."""
    out = []
    for doc, spans in zip(docs, mentions):
        spans = numpy.asarray(spans, dtype="i").reshape((-1, 2))
        rows = numpy.zeros((len(spans), 4), dtype="i")
        has_sents = len(spans) and doc.has_annotation("SENT_START")
        for i, (start, end) in enumerate(spans):
            lo, hi = 0, len(doc)
            if has_sents:
                sent = doc[int(start) : int(end)].sent
                lo, hi = sent.start, sent.end
            if window >= 0:
                lo, hi = max(lo, int(start) - window), min(hi, int(end) + window)
            rows[i] = (start, end, min(lo, start), max(hi, end))
        out.append(rows)
    return out


def _pool(model: Model, tokvecs: List[Floats2d], bounds: List[numpy.ndarray]) -> Tuple[Floats2d, Callable]:
    """Mean of the mention's and of the context's token vectors, concatenated."""
    ops = model.ops
    # Not tokvecs[0]'s width: a transformer listener gives an empty doc a
    # (0, 0) array, and the batch's first doc may be empty.
    width = max((X.shape[1] for X in tokvecs if X.shape[0]), default=0)
    n_mentions = sum(len(b) for b in bounds)
    pooled = ops.alloc2f(n_mentions, 2 * width)
    m = 0
    for X, rows in zip(tokvecs, bounds):
        for start, end, c_start, c_end in rows:
            pooled[m, :width] = X[start:end].mean(axis=0)
            pooled[m, width:] = X[c_start:c_end].mean(axis=0)
            m += 1

    def backprop(d_pooled: Floats2d) -> List[Floats2d]:
        d_tokvecs = [ops.alloc2f(*X.shape) for X in tokvecs]
        m = 0
        for dX, rows in zip(d_tokvecs, bounds):
            for start, end, c_start, c_end in rows:
                dX[start:end] += d_pooled[m, :width] / (end - start)
                dX[c_start:c_end] += d_pooled[m, width:] / (c_end - c_start)
                m += 1
        return d_tokvecs

    return pooled, backprop


def _normalize(ops, X: Floats2d) -> Tuple[Floats2d, Callable]:
    norms = ops.xp.sqrt((X * X).sum(axis=1, keepdims=True)) + 1e-8
    U = X / norms

    def backprop(dU: Floats2d) -> Floats2d:
        return (dU - U * (U * dU).sum(axis=1, keepdims=True)) / norms

    return U, backprop


def _forward(model: Model, X: LinkerInput, is_train: bool) -> Tuple[LinkerScores, Callable]:
    ops = model.ops
    tok2vec = model.get_ref("tok2vec")
    mention_layer = model.get_ref("mention_layer")
    entity_layer = model.get_ref("entity_layer")
    tokvecs, bp_tokvecs = tok2vec(X.docs, is_train)
    bounds = _bounds(X.docs, X.mentions, model.attrs["context_window"])
    pooled, bp_pool = _pool(model, tokvecs, bounds)
    mask = None
    if is_train and model.attrs["dropout"] > 0:
        mask = ops.get_dropout_mask(pooled.shape, model.attrs["dropout"])
        pooled = pooled * mask
    mentions, bp_mentions = mention_layer(pooled, is_train)
    entities, bp_entities = entity_layer(ops.asarray2f(X.entities), is_train)
    u_m, bp_um = _normalize(ops, mentions)
    u_e, bp_ue = _normalize(ops, entities)
    u_nil, bp_unil = _normalize(ops, model.get_param("nil_vector").reshape((1, -1)))
    log_scale = float(model.get_param("log_scale")[0])
    scale = min(math.exp(log_scale), MAX_SCALE)
    cos = u_m @ u_e.T
    cos_nil = (u_m @ u_nil.T)[:, 0]
    similarity = scale * cos
    nil = scale * cos_nil + model.get_param("nil_bias")[0]
    features = ops.asarray2f(X.features)
    feature_scores = features @ model.get_param("feature_W")

    def backprop(d: LinkerScores) -> LinkerInput:
        d_sim, d_nil, d_feat = d
        model.inc_grad("feature_W", features.T @ d_feat)
        model.inc_grad("nil_bias", ops.asarray1f([float(d_nil.sum())]))
        if math.exp(log_scale) < MAX_SCALE:
            d_log_scale = float((d_sim * similarity).sum() + (d_nil * scale * cos_nil).sum())
            model.inc_grad("log_scale", ops.asarray1f([d_log_scale]))
        d_cos = d_sim * scale
        d_cos_nil = d_nil * scale
        d_um = d_cos @ u_e + d_cos_nil.reshape((-1, 1)) * u_nil
        d_ue = d_cos.T @ u_m
        d_unil = d_cos_nil.reshape((1, -1)) @ u_m
        model.inc_grad("nil_vector", bp_unil(d_unil)[0])
        bp_entities(bp_ue(d_ue))
        d_pooled = bp_mentions(bp_um(d_um))
        if mask is not None:
            d_pooled = d_pooled * mask
        bp_tokvecs(bp_pool(d_pooled))
        return X

    return LinkerScores(similarity, nil, feature_scores), backprop
