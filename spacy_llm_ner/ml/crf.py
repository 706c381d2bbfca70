"""Linear-chain CRF inference in NumPy, batched over padded sequences.

Loops run over positions only (never over tokens x tags), so a batch costs
O(max_len) small vectorised steps. Hard constraints (invalid transitions, a
gold tag, a token forced to "O") are expressed as a boolean `allowed` mask of
shape (batch, length, n_tags); scores of forbidden choices are set to NEG so
that they carry zero probability without producing NaNs.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy

NEG = -1e9
# Scores are clipped to this magnitude: float32 model output reaches 3e38,
# and sums of such scores over a long document must stay finite (inf - inf
# would be NaN).
MAX_SCORE = 1e30
# Cap on padded cells (batch x length) per chunk, so that one 100k-token
# document in a batch of short ones does not pad every row to 100k.
MAX_PADDED_TOKENS = 200_000


@dataclass
class CRFParams:
    """Transition scores with the scheme's hard constraints applied.

    trans (ndarray): (n_tags, n_tags) scores for prev -> next.
    start (ndarray): (n_tags,) scores for the first tag.
    end (ndarray): (n_tags,) scores for the last tag.
    """

    trans: numpy.ndarray
    start: numpy.ndarray
    end: numpy.ndarray
    masks: Optional[Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]] = None

    @classmethod
    def constrained(
        cls,
        trans: numpy.ndarray,
        start: numpy.ndarray,
        end: numpy.ndarray,
        masks: Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray],
    ) -> "CRFParams":
        ok_trans, ok_start, ok_end = masks
        return cls(
            trans=numpy.where(ok_trans, _finite(trans), NEG),
            start=numpy.where(ok_start, _finite(start), NEG),
            end=numpy.where(ok_end, _finite(end), NEG),
            masks=masks,
        )

    def hard(self) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        """Transition, start and end scores with the forbidden choices at
        -inf instead of NEG, for Viterbi: it only compares sums, and a finite
        penalty is outweighed by large enough scores (a diverged model, a
        long document), which would let an invalid sequence win.

        RETURNS (Tuple[ndarray, ndarray, ndarray]): trans, start, end.
        """
        if self.masks is None:
            return self.trans, self.start, self.end
        ok_trans, ok_start, ok_end = self.masks
        return (
            numpy.where(ok_trans, self.trans, -numpy.inf),
            numpy.where(ok_start, self.start, -numpy.inf),
            numpy.where(ok_end, self.end, -numpy.inf),
        )


def _finite(scores: numpy.ndarray) -> numpy.ndarray:
    """float64 scores with NaN as NEG (a broken model's output counts as
    improbable) and everything clipped to +-MAX_SCORE."""
    scores = numpy.nan_to_num(numpy.asarray(scores, dtype="f8"), nan=NEG)
    return numpy.clip(scores, -MAX_SCORE, MAX_SCORE)


def logsumexp(x: numpy.ndarray, axis: int) -> numpy.ndarray:
    peak = x.max(axis=axis, keepdims=True)
    out = numpy.log(numpy.exp(x - peak).sum(axis=axis, keepdims=True)) + peak
    return numpy.squeeze(out, axis=axis)


def pad(seqs: Sequence[numpy.ndarray], fill: float = 0.0) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Stack (len_i, n_tags) arrays into (batch, max_len, n_tags).

    RETURNS (Tuple[ndarray, ndarray]): The padded array and the lengths.
    """
    lengths = numpy.asarray([len(s) for s in seqs], dtype="i")
    n_tags = seqs[0].shape[1]
    out = numpy.full((len(seqs), max(int(lengths.max()), 1), n_tags), fill, dtype=seqs[0].dtype)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out, lengths


def chunks_by_length(lengths: Sequence[int], max_cells: int = MAX_PADDED_TOKENS) -> List[List[int]]:
    """Group sequence indices (sorted by length) so that each group's padded
    size stays under max_cells, keeping memory bounded on mixed batches.

    lengths (Sequence[int]): Length of each sequence.
    max_cells (int): Most padded positions per group.
    RETURNS (List[List[int]]): Indices per group, shortest first.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: List[List[int]] = []
    current: List[int] = []
    for i in order:
        # Sorted ascending, so the newest sequence is the group's longest.
        longest = max(lengths[i], 1)
        if current and (len(current) + 1) * longest > max_cells:
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    return groups


def _apply_mask(
    emissions: numpy.ndarray, allowed: Optional[numpy.ndarray], forbidden: float = NEG
) -> numpy.ndarray:
    scores = _finite(emissions)
    if allowed is not None:
        scores = numpy.where(allowed, scores, forbidden)
    return scores


def forward_backward(
    emissions: numpy.ndarray,
    lengths: numpy.ndarray,
    params: CRFParams,
    allowed: Optional[numpy.ndarray] = None,
) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Forward and backward log-scores of a padded batch.

    emissions (ndarray): (batch, max_len, n_tags) unary scores.
    lengths (ndarray): (batch,) true lengths (0 allowed).
    params (CRFParams): Constrained transition scores.
    allowed (Optional[ndarray]): (batch, max_len, n_tags) bool mask.
    RETURNS (Tuple[ndarray, ndarray, ndarray]): alpha and beta (batch,
        max_len, n_tags), and log Z (batch,), 0 for empty sequences.
    """
    E = _apply_mask(emissions, allowed)
    lengths = numpy.asarray(lengths)
    scaled = _forward_backward_scaled(E, lengths, params)
    # Scores so extreme that a step's probabilities all underflow (a diverged
    # model) need the log-space recursion.
    return scaled if scaled is not None else _forward_backward_log(E, lengths, params)


def _forward_backward_scaled(
    E: numpy.ndarray, lengths: numpy.ndarray, params: CRFParams
) -> Optional[Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]]:
    # Rabiner's scaled recursion in probability space: each step is one
    # (batch, n_tags) @ (n_tags, n_tags) product and a normalisation, about
    # three times faster than a log-sum-exp over (batch, n_tags, n_tags).
    # Every factor is shifted by its maximum, so nothing overflows; the
    # shifts and the per-step normalisers are added back in log space.
    n_batch, max_len, _ = E.shape
    shift = E.max(axis=2, keepdims=True)
    q = numpy.exp(E - shift)
    shift = shift[:, :, 0]
    t_max, s_max, e_max = params.trans.max(), params.start.max(), params.end.max()
    P = numpy.exp(params.trans - t_max)
    a_hat = numpy.empty_like(E)
    norm = numpy.empty((n_batch, max_len))
    a = numpy.exp(params.start - s_max) * q[:, 0]
    for t in range(max_len):
        if t:
            a = (a_hat[:, t - 1] @ P) * q[:, t]
        c = a.sum(axis=1)
        norm[:, t] = c
        a_hat[:, t] = a / numpy.where(c > 0, c, 1.0)[:, None]
    positions = numpy.arange(max_len)
    valid = positions[None, :] < lengths[:, None]
    # Far below any real step's normaliser; near underflow, precision is lost.
    if not numpy.all(norm[valid] > 1e-200) or not numpy.all(numpy.isfinite(norm[valid])):
        return None
    # Padding positions divide and log by 1: they change nothing.
    safe_norm = numpy.where(valid & (norm > 0), norm, 1.0)
    log_norm = numpy.log(safe_norm) + numpy.where(valid, shift, 0.0) + t_max * valid
    log_norm[:, 0] += s_max - t_max
    # log_norm summed up to and including t, and after t.
    upto = numpy.cumsum(log_norm, axis=1)
    after = upto[:, -1:] - upto
    e_hat = numpy.exp(params.end - e_max)
    b_hat = numpy.empty_like(E)
    last = (positions[None, :] >= lengths[:, None] - 1)[:, :, None]
    b_hat[:, max_len - 1] = e_hat
    for t in range(max_len - 2, -1, -1):
        b = ((q[:, t + 1] * b_hat[:, t + 1]) @ P.T) / safe_norm[:, t + 1, None]
        b_hat[:, t] = numpy.where(last[:, t], e_hat, b)
    alpha = _safe_log(a_hat) + upto[:, :, None]
    beta = _safe_log(b_hat) + (after + e_max)[:, :, None]
    rows = numpy.arange(n_batch)
    final = numpy.maximum(lengths - 1, 0)
    ending = (a_hat[rows, final] * e_hat).sum(axis=1)
    if not numpy.all(ending[lengths > 0] > 1e-200):
        return None  # no valid way to end: every path is forbidden
    log_z = numpy.log(numpy.where(lengths > 0, ending, 1.0)) + upto[rows, final] + e_max
    log_z = numpy.where(lengths > 0, log_z, 0.0)
    # As in the log-space recursion: past its end a row keeps its last alpha
    # and has the end scores as beta.
    alpha = numpy.where(valid[:, :, None], alpha, alpha[rows, final][:, None, :])
    beta = numpy.where(last, params.end, beta)
    return alpha, beta, log_z


def _safe_log(x: numpy.ndarray) -> numpy.ndarray:
    # Impossible tags (probability 0) get NEG, as the log-space recursion's
    # forbidden scores, not -inf (which would give NaN in later sums).
    return numpy.where(x > 0, numpy.log(numpy.where(x > 0, x, 1.0)), NEG)


def _forward_backward_log(
    E: numpy.ndarray, lengths: numpy.ndarray, params: CRFParams
) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    n_batch, max_len, _ = E.shape
    alpha = numpy.empty_like(E)
    beta = numpy.empty_like(E)
    alpha[:, 0] = params.start + E[:, 0]
    for t in range(1, max_len):
        step = logsumexp(alpha[:, t - 1, :, None] + params.trans[None], axis=1) + E[:, t]
        alpha[:, t] = numpy.where((t < lengths)[:, None], step, alpha[:, t - 1])
    beta[:, max_len - 1] = params.end
    for t in range(max_len - 2, -1, -1):
        nxt = E[:, t + 1] + beta[:, t + 1]
        step = logsumexp(params.trans[None] + nxt[:, None, :], axis=2)
        beta[:, t] = numpy.where((t < lengths - 1)[:, None], step, params.end)
    log_z = logsumexp(alpha[:, max_len - 1] + params.end, axis=1)
    log_z = numpy.where(lengths > 0, log_z, 0.0)
    return alpha, beta, log_z


@dataclass
class Marginals:
    """Expected counts under the CRF, i.e. the gradient of log Z.

    unary (ndarray): (batch, max_len, n_tags) tag marginals, 0 on padding.
    trans (ndarray): (n_tags, n_tags) expected transition counts, summed.
    start (ndarray): (n_tags,) expected first tags, summed over the batch.
    end (ndarray): (n_tags,) expected last tags, summed over the batch.
    log_z (ndarray): (batch,) log partition function.
    """

    unary: numpy.ndarray
    trans: numpy.ndarray
    start: numpy.ndarray
    end: numpy.ndarray
    log_z: numpy.ndarray


def marginals(
    emissions: numpy.ndarray,
    lengths: numpy.ndarray,
    params: CRFParams,
    allowed: Optional[numpy.ndarray] = None,
) -> Marginals:
    """Tag and transition marginals of a padded batch (see forward_backward)."""
    E = _apply_mask(emissions, allowed)
    alpha, beta, log_z = forward_backward(E, lengths, params)
    n_batch, max_len, n_tags = E.shape
    positions = numpy.arange(max_len)
    valid = positions[None, :] < lengths[:, None]
    unary = numpy.exp(alpha + beta - log_z[:, None, None]) * valid[:, :, None]
    if max_len > 1:
        pair = (
            alpha[:, :-1, :, None]
            + params.trans[None, None]
            + (E[:, 1:] + beta[:, 1:])[:, :, None, :]
            - log_z[:, None, None, None]
        )
        pair = numpy.exp(pair) * valid[:, 1:, None, None]
        trans = pair.sum(axis=(0, 1))
    else:
        trans = numpy.zeros((n_tags, n_tags))
    nonempty = lengths > 0
    start = unary[nonempty, 0].sum(axis=0)
    last = numpy.maximum(lengths - 1, 0)
    end = unary[numpy.arange(n_batch), last][nonempty].sum(axis=0)
    return Marginals(unary=unary, trans=trans, start=start, end=end, log_z=log_z)


def viterbi(
    emissions: numpy.ndarray,
    lengths: numpy.ndarray,
    params: CRFParams,
    allowed: Optional[numpy.ndarray] = None,
) -> List[numpy.ndarray]:
    """Best valid tag sequence of each padded row.

    RETURNS (List[ndarray]): One int array of tag ids per row, of its length.
    """
    E = _apply_mask(emissions, allowed, forbidden=-numpy.inf)
    n_batch, max_len, n_tags = E.shape
    lengths = numpy.asarray(lengths)
    trans, start, end = params.hard()
    # A row whose scores are all -inf falls back to "O" (argmax 0), which is
    # a valid first, last and next tag after "O" in both schemes.
    score = start + E[:, 0]
    backptr = numpy.empty((n_batch, max_len, n_tags), dtype="i")
    identity = numpy.arange(n_tags, dtype="i")
    for t in range(1, max_len):
        cand = score[:, :, None] + trans[None]
        best_prev = cand.argmax(axis=1)
        step = numpy.take_along_axis(cand, best_prev[:, None, :], axis=1)[:, 0] + E[:, t]
        active = (t < lengths)[:, None]
        score = numpy.where(active, step, score)
        backptr[:, t] = numpy.where(active, best_prev, identity)
    path = numpy.empty((n_batch, max_len), dtype="i")
    path[:, max_len - 1] = (score + end).argmax(axis=1)
    rows = numpy.arange(n_batch)
    for t in range(max_len - 1, 0, -1):
        path[:, t - 1] = backptr[rows, t, path[:, t]]
    return [path[i, : lengths[i]] for i in range(n_batch)]


def span_log_probs(
    emissions: numpy.ndarray,
    tag_ids: numpy.ndarray,
    spans: numpy.ndarray,
    params: CRFParams,
    continuation: numpy.ndarray,
    allowed: Optional[numpy.ndarray] = None,
    *,
    lattice: Optional[Tuple[numpy.ndarray, numpy.ndarray, float]] = None,
) -> numpy.ndarray:
    """Log marginal probability that each span is tagged exactly as decoded
    (its tags, and the next tag not extending it), for one sequence.

    emissions (ndarray): (length, n_tags) unary scores of one sequence.
    tag_ids (ndarray): (length,) the decoded tags.
    spans (ndarray): (n_spans, 3) start, end (exclusive), label.
    params (CRFParams): Constrained transition scores.
    continuation (ndarray): (n_tags, n_tags) next tag extends the previous.
    allowed (Optional[ndarray]): (length, n_tags) bool mask.
    lattice (Optional[Tuple[ndarray, ndarray, float]]): This sequence's
        alpha, beta (length, n_tags) and log Z, if already computed for a
        padded batch; computed here otherwise.
    RETURNS (ndarray): (n_spans,) log probabilities, <= 0.
    """
    if len(spans) == 0:
        return numpy.zeros(0)
    E = _apply_mask(emissions, allowed)
    length = E.shape[0]
    if lattice is None:
        alpha, beta, log_z = forward_backward(E[None], numpy.asarray([length]), params)
        lattice = (alpha[0], beta[0], float(log_z[0]))
    alpha, beta, log_z = lattice
    # Score of the decoded path, prefix-summed, so that the inside of every
    # span is one subtraction.
    unary = E[numpy.arange(length), tag_ids]
    pairwise = numpy.concatenate([[0.0], params.trans[tag_ids[:-1], tag_ids[1:]]])
    cumulative = numpy.cumsum(unary + pairwise)
    starts, ends = spans[:, 0], spans[:, 1] - 1
    first, last = tag_ids[starts], tag_ids[ends]
    prev_alpha = alpha[numpy.maximum(starts - 1, 0)]
    enter = numpy.where(
        starts > 0,
        logsumexp(prev_alpha + params.trans[:, first].T, axis=1),
        params.start[first],
    )
    inside = cumulative[ends] - cumulative[starts] + unary[starts]
    nxt = numpy.minimum(ends + 1, length - 1)
    leave_scores = params.trans[last] + E[nxt] + beta[nxt]
    leave_scores = numpy.where(continuation[last], NEG, leave_scores)
    leave = numpy.where(ends + 1 < length, logsumexp(leave_scores, axis=1), params.end[last])
    return numpy.minimum(enter + inside + leave - log_z, 0.0)
