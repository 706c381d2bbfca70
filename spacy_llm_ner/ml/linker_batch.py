"""Batches for the entity-linker model (`ml/linker.py`): mentions and their
candidates laid out as one `LinkerInput`, each mention's logits read back
from the model's `LinkerScores`, and the training loss.

A mention's options are its candidates plus NIL. Its logits are the scaled
cosine of the mention with each candidate entity plus the candidate's
feature score, and the NIL logit; one softmax runs over them.
"""
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc
from thinc.api import Ops

from ..kb.candidates import ScoredCandidate
from .linker import FEATURES, LinkerInput, LinkerScores, candidate_features

# One mention's candidates: (entity id, feature row), best first.
Candidates = List[Tuple[str, numpy.ndarray]]


def with_features(candidates: Sequence[ScoredCandidate]) -> Candidates:
    """One mention's candidates with their feature rows.

    candidates (Sequence[ScoredCandidate]): The cascade's candidates.
    RETURNS (Candidates): (entity id, feature row) pairs, best first.
    """
    return [(c.entity_id, f) for c, f in zip(candidates, candidate_features(candidates))]


def training_candidates(
    scored: List[List[ScoredCandidate]], gold_ids: Sequence[Optional[str]]
) -> Tuple[List[Candidates], List[int]]:
    """Each gold mention's candidates and the index of its gold option.

    scored (List[List[ScoredCandidate]]): The cascade's candidates per mention.
    gold_ids (Sequence[Optional[str]]): Per mention, the gold entity, or None
        for NIL.
    RETURNS (Tuple[List[Candidates], List[int]]): The candidates, and per
        mention the gold candidate's index (the number of candidates for NIL).
    """
    candidates, targets = [], []
    for cands, target in zip(scored, gold_ids):
        feats = candidate_features(cands)
        ids = [c.entity_id for c in cands]
        if target is not None and target not in ids:
            # The cascade missed the gold entity: add it, and let this
            # mention teach the similarity only (no string evidence).
            ids.append(target)
            feats = numpy.zeros((len(ids), len(FEATURES)), dtype="f")
        candidates.append(list(zip(ids, feats)))
        targets.append(len(ids) if target is None else ids.index(target))
    return candidates, targets


class LinkerBatch(NamedTuple):
    """Candidates of a batch of mentions, laid out for the model.

    X (LinkerInput): The model's input.
    entity_ids (List[str]): The entity of each row of X.entities.
    rows (List[numpy.ndarray]): Per mention, the entity row of each candidate.
    offsets (numpy.ndarray): Per mention, the row of its first candidate in
        X.features.
    """

    X: LinkerInput
    entity_ids: List[str]
    rows: List[numpy.ndarray]
    offsets: numpy.ndarray


def layout_batch(
    docs: List[Doc],
    spans: List[List[Tuple[int, int]]],
    candidates: List[Candidates],
    encode: Callable[[List[str]], numpy.ndarray],
    *,
    ops: Ops,
    width: int,
    extra_ids: Sequence[str] = (),
) -> LinkerBatch:
    """Lay out mentions and their candidates; every distinct entity is
    encoded once.

    docs (List[Doc]): The batch.
    spans (List[List[Tuple[int, int]]]): Per doc, the token offsets of its
        mentions, in the order of `candidates`.
    candidates (List[Candidates]): Per mention (across docs), its candidates.
    encode (Callable[[List[str]], numpy.ndarray]): Entity ids to their
        (n, width) backbone encodings.
    ops (Ops): The model's ops.
    width (int): The encodings' width (for a batch without entities).
    extra_ids (Sequence[str]): Entities to encode besides the candidates
        (e.g. the gold entities, as in-batch negatives).
    RETURNS (LinkerBatch): The batch.
    """
    row_of: Dict[str, int] = {}
    rows, features, offsets = [], [], []
    for cands in candidates:
        offsets.append(len(features))
        rows.append(numpy.asarray([row_of.setdefault(e, len(row_of)) for e, _ in cands], dtype="i"))
        features.extend(f for _, f in cands)
    for entity_id in extra_ids:
        row_of.setdefault(entity_id, len(row_of))
    ids = list(row_of)
    vectors = encode(ids) if ids else numpy.zeros((0, width), dtype="f")
    X = LinkerInput(
        docs=docs,
        mentions=[numpy.asarray(s, dtype="i").reshape((-1, 2)) for s in spans],
        entities=ops.asarray2f(vectors),
        features=ops.asarray2f(numpy.asarray(features, dtype="f").reshape((-1, len(FEATURES)))),
    )
    return LinkerBatch(X, ids, rows, numpy.asarray(offsets, dtype="i"))


def mention_logits(scores: LinkerScores, batch: LinkerBatch, m: int, ops: Ops) -> numpy.ndarray:
    """The logits of mention m's options.

    scores (LinkerScores): The model's output for the batch.
    batch (LinkerBatch): The batch.
    m (int): The mention's index in the batch.
    ops (Ops): The model's ops.
    RETURNS (numpy.ndarray): [candidate logits..., NIL logit], float64.
    """
    rows = batch.rows[m]
    start = int(batch.offsets[m])
    sim = ops.to_numpy(scores.similarity[m])[rows] if len(rows) else numpy.zeros(0)
    feat = ops.to_numpy(scores.features[start : start + len(rows)])
    nil = float(ops.to_numpy(scores.nil[m : m + 1])[0])
    return numpy.concatenate([numpy.asarray(sim + feat, dtype="f8"), [nil]])


def softmax(x: numpy.ndarray) -> numpy.ndarray:
    """Softmax of a vector, in float64.

    x (numpy.ndarray): Logits.
    RETURNS (numpy.ndarray): Probabilities.
    """
    x = numpy.asarray(x, dtype="f8")
    e = numpy.exp(x - x.max())
    return e / e.sum()


def linker_loss(
    scores: LinkerScores,
    batch: LinkerBatch,
    targets: Sequence[int],
    gold_ids: Sequence[Optional[str]],
    *,
    negatives_weight: float,
    ops: Ops,
) -> Tuple[float, LinkerScores]:
    """Cross-entropy of each mention's softmax over its candidates and NIL,
    plus, weighted by `negatives_weight`, the cross-entropy of each in-KB
    mention's similarity softmax over every entity of the batch (in-batch
    negatives: the similarity learns from entities the cascade did not
    propose).

    scores (LinkerScores): The model's output for the batch.
    batch (LinkerBatch): The batch (gold entities among its entities).
    targets (Sequence[int]): Per mention, the index of the gold option:
        a candidate's, or the number of candidates for NIL.
    gold_ids (Sequence[Optional[str]]): Per mention, the gold entity id, or
        None for NIL.
    negatives_weight (float): Weight of the in-batch-negatives term.
    ops (Ops): The model's ops.
    RETURNS (Tuple[float, LinkerScores]): The loss and its gradient.
    """
    sim = ops.to_numpy(scores.similarity).astype("f8")
    d_sim = numpy.zeros(sim.shape, dtype="f")
    d_nil = numpy.zeros(len(targets), dtype="f")
    d_feat = numpy.zeros(len(ops.to_numpy(scores.features)), dtype="f")
    row_of = {e: i for i, e in enumerate(batch.entity_ids)}
    loss = 0.0
    for m, (target, gold_id) in enumerate(zip(targets, gold_ids)):
        probs = softmax(mention_logits(scores, batch, m, ops))
        loss -= float(numpy.log(max(probs[target], 1e-12)))
        d = probs.copy()
        d[target] -= 1.0
        rows, start = batch.rows[m], int(batch.offsets[m])
        numpy.add.at(d_sim[m], rows, d[:-1])
        d_feat[start : start + len(rows)] += d[:-1]
        d_nil[m] += d[-1]
        if negatives_weight > 0 and gold_id is not None and sim.shape[1] > 1:
            row = row_of[gold_id]
            p_all = softmax(sim[m])
            loss -= negatives_weight * float(numpy.log(max(p_all[row], 1e-12)))
            p_all[row] -= 1.0
            d_sim[m] += negatives_weight * p_all
    return loss, LinkerScores(ops.asarray2f(d_sim), ops.asarray1f(d_nil), ops.asarray1f(d_feat))
