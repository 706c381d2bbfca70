"""Losses and decoders over TagScores: a softmax decoder (independent tags,
argmax repaired to valid spans) and a CRF decoder (learned transitions,
constrained Viterbi, span marginals as confidences)."""
from typing import List, Optional, Sequence, Tuple

import numpy
from thinc.api import get_current_ops

from .tags import TagSet
from . import crf
from .models import TagScores

DECODERS = ("crf", "softmax")
CONFIDENCES = ("mean", "min")

Decoded = Tuple[numpy.ndarray, numpy.ndarray]  # spans (n, 3), confidences (n,)


OpenTags = Optional[Sequence[Optional[numpy.ndarray]]]


def gold_masks(
    gold: Sequence[numpy.ndarray], n_tags: int, open_tags: OpenTags = None
) -> List[numpy.ndarray]:
    """Boolean (length, n_tags) masks of the tags the gold allows: one tag
    where it is known; where it is missing (-1), the doc's open tags (a
    boolean (length, n_tags) array, e.g. "not Disease" on silver), else all
    tags."""
    masks = []
    for i, ids in enumerate(gold):
        mask = numpy.zeros((len(ids), n_tags), dtype=bool)
        known = ids >= 0
        rows = open_tags[i] if open_tags is not None else None
        mask[~known] = True if rows is None else rows[~known]
        mask[numpy.flatnonzero(known), ids[known]] = True
        masks.append(mask)
    return masks


def _as_numpy(arrays: Sequence) -> List[numpy.ndarray]:
    ops = get_current_ops()
    return [numpy.asarray(ops.to_numpy(a), dtype="f8") for a in arrays]


def _stack_masks(masks: Sequence[Optional[numpy.ndarray]], emissions: numpy.ndarray) -> Optional[numpy.ndarray]:
    if all(m is None for m in masks):
        return None
    out = numpy.ones(emissions.shape, dtype=bool)
    for i, m in enumerate(masks):
        if m is not None:
            out[i, : len(m)] = m
    return out


class Decoder:
    """Shared plumbing; subclasses define the loss and the decoding."""

    def __init__(self, tagset: TagSet, *, confidence: str = "mean") -> None:
        if confidence not in CONFIDENCES:
            raise ValueError(
                f"Unknown confidence {confidence!r}: expected one of {', '.join(CONFIDENCES)}."
            )
        self.tagset = tagset
        self.confidence = confidence
        self.masks = tagset.constraints()
        self.continuation = tagset.continuation()

    def params(self, scores: TagScores) -> crf.CRFParams:
        raise NotImplementedError

    def unary(self, emissions: numpy.ndarray) -> numpy.ndarray:
        return emissions

    def get_loss(
        self, scores: TagScores, gold: Sequence[numpy.ndarray], *, open_tags: OpenTags = None
    ) -> Tuple[float, TagScores]:
        """Negative log-likelihood of the tags the gold allows, and its
        gradient.

        scores (TagScores): Model output for the batch.
        gold (Sequence[ndarray]): Per doc, tag ids, -1 where missing.
        open_tags (OpenTags): Per doc, None or the tags each missing token
            may take, a boolean (length, n_tags) array (default: all).
        RETURNS (Tuple[float, TagScores]): Loss and its gradient.
        """
        raise NotImplementedError

    def token_marginals(self, scores: TagScores) -> List[numpy.ndarray]:
        """Per doc, (length, n_tags) probability of each tag at each token
        (softmax probabilities, or the CRF's marginals under its
        constraints): the soft targets a teacher hands a student.

        scores (TagScores): Model output.
        RETURNS (List[ndarray]): One float64 array per doc, rows sum to 1.
        """
        raise NotImplementedError

    def get_soft_loss(
        self, scores: TagScores, targets: Sequence[Optional[numpy.ndarray]]
    ) -> Tuple[float, List[numpy.ndarray]]:
        """Distillation term: KL(teacher || student) of each token's tag
        distribution, summed over the tokens that have a target.

        The gradient on the emissions is student marginal - teacher
        marginal. For the softmax decoder that is the exact cross-entropy
        gradient; for the CRF it is the exact gradient of the teacher-expected
        log-likelihood with respect to the emissions (the transitions are
        left to the gold loss, as the teacher's pairwise marginals are not
        kept).

        scores (TagScores): Student output.
        targets (Sequence[Optional[ndarray]]): Per doc, (length, n_tags)
            teacher probabilities in this tag set's order, rows of NaN where
            a token has no target; None for docs without targets.
        RETURNS (Tuple[float, List[ndarray]]): Loss and d_emissions per doc.
        """
        student = self.token_marginals(scores)
        loss = 0.0
        d_emissions = []
        for probs, target in zip(student, targets):
            grad = numpy.zeros_like(probs)
            if target is not None and len(probs):
                rows = ~numpy.isnan(target[:, 0])
                t, p = target[rows], probs[rows]
                grad[rows] = p - t
                with numpy.errstate(divide="ignore", invalid="ignore"):
                    kl = numpy.where(t > 0, t * (numpy.log(t) - numpy.log(numpy.maximum(p, 1e-12))), 0.0)
                loss += float(kl.sum())
            d_emissions.append(grad)
        return loss, d_emissions

    def decode(
        self, scores: TagScores, allowed: Sequence[Optional[numpy.ndarray]]
    ) -> List[Decoded]:
        """Best valid tag sequence of each doc as spans with confidences.

        scores (TagScores): Model output.
        allowed (Sequence[Optional[ndarray]]): Per doc, a (length, n_tags)
            mask of permitted tags (e.g. "O" only on pre-set entities).
        RETURNS (List[Tuple[ndarray, ndarray]]): Spans (n, 3) and confidences.
        """
        emissions = [self.unary(e) for e in _as_numpy(scores.emissions)]
        params = self.params(scores)
        out: List[Optional[Decoded]] = [None] * len(emissions)
        for group in crf.chunks_by_length([len(e) for e in emissions]):
            if all(len(emissions[i]) == 0 for i in group):
                for i in group:
                    out[i] = (numpy.zeros((0, 3), "i"), numpy.zeros(0))
                continue
            padded, lengths = crf.pad([emissions[i] for i in group])
            mask = _stack_masks([allowed[i] for i in group], padded)
            paths = crf.viterbi(padded, lengths, params, mask)
            lattice = self.lattice(padded, lengths, params, mask)
            for row, i in enumerate(group):
                n = len(paths[row])
                spans = self.tagset.to_spans(paths[row])
                row_lattice = None if lattice is None else (
                    lattice[0][row, :n], lattice[1][row, :n], float(lattice[2][row])
                )
                row_mask = None if mask is None else mask[row, :n]
                conf = self.span_confidence(emissions[i], paths[row], spans, params, row_mask, row_lattice)
                out[i] = (spans, conf)
        return out  # type: ignore[return-value]

    def lattice(
        self,
        padded: numpy.ndarray,
        lengths: numpy.ndarray,
        params: crf.CRFParams,
        mask: Optional[numpy.ndarray],
    ) -> Optional[Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]]:
        """Batch-level quantities span_confidence needs (None: nothing)."""
        return None

    def span_confidence(
        self,
        unary: numpy.ndarray,
        path: numpy.ndarray,
        spans: numpy.ndarray,
        params: crf.CRFParams,
        allowed: Optional[numpy.ndarray],
        lattice: Optional[Tuple[numpy.ndarray, numpy.ndarray, float]],
    ) -> numpy.ndarray:
        raise NotImplementedError


class CRFDecoder(Decoder):
    """Linear-chain CRF trained with the (partially observed) log-likelihood."""

    def params(self, scores: TagScores) -> crf.CRFParams:
        ops = get_current_ops()
        return crf.CRFParams.constrained(
            ops.to_numpy(scores.transitions), ops.to_numpy(scores.start), ops.to_numpy(scores.end), self.masks
        )

    def get_loss(
        self, scores: TagScores, gold: Sequence[numpy.ndarray], *, open_tags: OpenTags = None
    ) -> Tuple[float, TagScores]:
        emissions = _as_numpy(scores.emissions)
        params = self.params(scores)
        n_tags = len(self.tagset)
        masks = gold_masks(gold, n_tags, open_tags)
        d_emissions = [numpy.zeros_like(e) for e in emissions]
        d_trans = numpy.zeros((n_tags, n_tags))
        d_start = numpy.zeros(n_tags)
        d_end = numpy.zeros(n_tags)
        loss = 0.0
        for group in crf.chunks_by_length([len(e) for e in emissions]):
            padded, lengths = crf.pad([emissions[i] for i in group])
            if lengths.max() == 0:
                continue
            free = crf.marginals(padded, lengths, params)
            clamped = crf.marginals(padded, lengths, params, _stack_masks([masks[i] for i in group], padded))
            loss += float((free.log_z - clamped.log_z).sum())
            for row, i in enumerate(group):
                d_emissions[i] = free.unary[row, : lengths[row]] - clamped.unary[row, : lengths[row]]
            d_trans += free.trans - clamped.trans
            d_start += free.start - clamped.start
            d_end += free.end - clamped.end
        ops = get_current_ops()

        def as_floats(a):
            return ops.asarray(a, dtype="f")

        # Summed, not averaged, as spaCy's own taggers do: components that
        # share a transformer then weigh each token alike.
        d_scores = TagScores(
            emissions=[as_floats(d) for d in d_emissions],
            transitions=as_floats(d_trans),
            start=as_floats(d_start),
            end=as_floats(d_end),
        )
        return loss, d_scores

    def token_marginals(self, scores: TagScores) -> List[numpy.ndarray]:
        emissions = _as_numpy(scores.emissions)
        params = self.params(scores)
        out: List[numpy.ndarray] = [numpy.zeros((0, len(self.tagset)))] * len(emissions)
        for group in crf.chunks_by_length([len(e) for e in emissions]):
            padded, lengths = crf.pad([emissions[i] for i in group])
            if lengths.max() == 0:
                continue
            unary = crf.marginals(padded, lengths, params).unary
            for row, i in enumerate(group):
                out[i] = unary[row, : lengths[row]]
        return out

    def lattice(self, padded, lengths, params, mask):
        # One forward-backward pass over the padded chunk serves the span
        # marginals of every doc in it.
        return crf.forward_backward(padded, lengths, params, mask)

    def span_confidence(self, unary, path, spans, params, allowed, lattice):
        return numpy.exp(
            crf.span_log_probs(
                unary, path, spans, params, self.continuation, allowed, lattice=lattice
            )
        )


class SoftmaxDecoder(Decoder):
    """Independent per-token softmax; decoding takes the most probable valid
    tag sequence under it (argmax repaired to valid spans)."""

    def params(self, scores: TagScores) -> crf.CRFParams:
        n = len(self.tagset)
        return crf.CRFParams.constrained(numpy.zeros((n, n)), numpy.zeros(n), numpy.zeros(n), self.masks)

    def unary(self, emissions: numpy.ndarray) -> numpy.ndarray:
        return emissions - crf.logsumexp(emissions, axis=1)[:, None] if len(emissions) else emissions

    def token_marginals(self, scores: TagScores) -> List[numpy.ndarray]:
        return [numpy.exp(self.unary(e)) for e in _as_numpy(scores.emissions)]

    def get_loss(
        self, scores: TagScores, gold: Sequence[numpy.ndarray], *, open_tags: OpenTags = None
    ) -> Tuple[float, TagScores]:
        ops = get_current_ops()
        emissions = _as_numpy(scores.emissions)
        masks = gold_masks(gold, len(self.tagset), open_tags)
        loss = 0.0
        d_emissions = []
        for logits, mask in zip(emissions, masks):
            # -log P(tag in allowed set): cross-entropy where one tag is
            # allowed, zero where all are, in between for partial labels.
            log_probs = self.unary(logits)
            if not len(log_probs):
                d_emissions.append(ops.asarray(log_probs, dtype="f"))
                continue
            masked = numpy.where(mask, log_probs, -numpy.inf)
            log_allowed = crf.logsumexp(masked, axis=1)
            grad = numpy.exp(log_probs) - numpy.exp(masked - log_allowed[:, None])
            loss -= float(log_allowed.sum())
            d_emissions.append(ops.asarray(grad, dtype="f"))
        zeros = ops.alloc2f(*scores.transitions.shape)
        d_scores = TagScores(
            emissions=d_emissions,
            transitions=zeros,
            start=ops.alloc1f(zeros.shape[0]),
            end=ops.alloc1f(zeros.shape[0]),
        )
        return loss, d_scores

    def span_confidence(self, unary, path, spans, params, allowed, lattice):
        if len(spans) == 0:
            return numpy.zeros(0)
        token_probs = numpy.exp(unary[numpy.arange(len(path)), path])
        bounds = spans[:, :2].ravel()
        reduce = numpy.add if self.confidence == "mean" else numpy.minimum
        # reduceat over [start, end) pairs; the odd slots are the gaps between.
        values = reduce.reduceat(numpy.append(token_probs, 0.0), bounds)[::2]
        if self.confidence == "mean":
            values = values / (spans[:, 1] - spans[:, 0])
        return values


def make_decoder(name: str, tagset: TagSet, *, confidence: str = "mean") -> Decoder:
    """Build the decoder named in the component config.

    name (str): "crf" or "softmax".
    tagset (TagSet): The tags.
    confidence (str): Softmax span confidence, "mean" or "min" token prob.
    RETURNS (Decoder): The decoder.
    """
    if name == "crf":
        return CRFDecoder(tagset, confidence=confidence)
    if name == "softmax":
        return SoftmaxDecoder(tagset, confidence=confidence)
    raise ValueError(f"Unknown decoder {name!r}: expected one of {', '.join(DECODERS)}.")
