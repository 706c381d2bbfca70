"""Nearest-neighbour search in an `NgramIndex`, vectorised over a batch.

Retrieval is as before (ngrams.py): each query's rarest 3-grams, within a
budget of posting entries, in one scipy sparse product per batch. What
changed is the rest, which used to loop in Python per query and per common
3-gram (a binary search of each candidate in each posting list):

- the shortlist (the `rescore` best candidates by partial score, scaled by
  how close the name's 3-gram count is to the query's) is taken row by row
  with argpartition, without arrays the size of the whole product;
- the exact cosine of every shortlisted (query, name) pair comes from the
  forward rows of the index (name -> its 3-grams and weights, the transpose
  of the posting lists): the pairs' 3-grams are gathered in one CSR gather
  and joined with the query weights through a small dense table (the batch's
  distinct 3-grams -> columns), then summed with `np.bincount`;
- the top `top_n` per query is one lexsort over the batch.

Results are flat arrays (query, row, score), best first within a query, so
the cascade can gather the names' entities for the whole batch at once.
"""
from typing import Callable, List, Optional, Protocol, Tuple

import numpy as np
import scipy.sparse as sp

from .csr import csr_positions, distinct


class NgramIndex(Protocol):
    """What the search reads of an index (`ngrams.NgramIndex`, which calls
    this module: described here rather than imported, so that the two do not
    import each other)."""

    buckets: np.ndarray
    postings: sp.csr_matrix
    posting_len: np.ndarray

    @property
    def row_grams(self) -> np.ndarray: ...

    @property
    def forward(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def to_local(self, queries: sp.csr_matrix) -> sp.csr_matrix: ...

Flat = Tuple[np.ndarray, np.ndarray, np.ndarray]
# (first query, end query, length factor) -> (query, row) candidates of that
# slice of the batch, queries counted from the slice's start (e.g.
# `words.WordIndex.shortlist`).
Shortlist = Callable[[int, int, Callable[[np.ndarray, np.ndarray], np.ndarray]], Tuple[np.ndarray, np.ndarray]]
# How hard the shortlist key penalises a length (3-gram count) unlike the
# query's: of 1, 2 and 4, 4 kept most typo matches at every budget tried.
LENGTH_POWER = 4


def search_flat(
    index: "NgramIndex",
    queries: sp.csr_matrix,
    *,
    top_n: int,
    budget: int,
    min_grams: int,
    rescore: int,
    batch_size: int,
    min_score: float,
    shortlist: Optional[Shortlist] = None,
    grams: bool = True,
) -> Flat:
    """The rows most similar to each query vector (see `NgramIndex.search`).

    index (NgramIndex): The index.
    queries (scipy.sparse.csr_matrix): Unit query rows in bucket space.
    top_n (int): Rows per query.
    budget (int): Posting entries read per query for retrieval (0: all).
    min_grams (int): Rarest 3-grams always used for retrieval.
    rescore (int): Candidates scored exactly per query.
    batch_size (int): Queries per sparse product.
    min_score (float): Drop rows scoring below this.
    shortlist (Optional[Shortlist]): Candidates from elsewhere (the KB's
        words), rescored the same way.
    grams (bool): Also retrieve through the rarest 3-grams (with a
        `shortlist`: the union of both; without one, always).
    RETURNS (Flat): int64 query, int64 row, float32 cosine; by query, best
        first within a query (ties by row).
    """
    local = index.to_local(queries)
    n_grams = np.diff(queries.indptr)  # the query's 3-grams, the index's or not
    parts: List[Flat] = []
    slots = np.full(len(index.buckets), -1, dtype=np.int64)
    for start in range(0, local.shape[0], batch_size):
        batch = local[start : start + batch_size]
        batch.sort_indices()
        if budget <= 0 and (grams or shortlist is None):
            # Exact search finds every row a shortlist could add.
            product = (batch @ index.postings).tocsr()
            # Each row's best top_n first: the product is too long to sort whole.
            q, pos = _best_of_rows(product.indptr, top_n, lambda i, lo, hi, p=product: p.data[lo:hi])
            rows, scores = product.indices[pos].astype(np.int64), product.data[pos]
        else:
            counts = n_grams[start : start + batch_size]
            found = []
            if shortlist is not None:
                found.append(shortlist(
                    start, start + batch.shape[0], lambda qq, rr: length_factor(index, rr, counts[qq].astype(np.float32))
                ))
            if grams or shortlist is None:
                found.append(_shortlist(index, batch, counts, budget=budget, min_grams=min_grams, rescore=rescore))
            q, rows = _union(found, n_rows=index.n_rows)
            scores = _exact_scores(index, batch, q, rows, slots)
        q, rows, scores = _top(q, rows, scores, top_n=top_n, min_score=min_score)
        parts.append((q + start, rows, scores))
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return tuple(np.concatenate(c) for c in zip(*parts))  # type: ignore[return-value]


def _union(found: List[Tuple[np.ndarray, np.ndarray]], *, n_rows: int) -> Tuple[np.ndarray, np.ndarray]:
    """Distinct (query, row) candidates of several retrievals, by query.

    found (List[Tuple[np.ndarray, np.ndarray]]): (query, row) arrays.
    n_rows (int): Rows of the index.
    RETURNS (Tuple[np.ndarray, np.ndarray]): int64 query and row.
    """
    if len(found) == 1:
        return found[0]
    pairs = distinct(np.concatenate([q * n_rows + r for q, r in found]))
    return pairs // n_rows, pairs % n_rows


def retrieval_mask(index: "NgramIndex", batch: sp.csr_matrix, budget: int, min_grams: int) -> np.ndarray:
    """Which entries of each query row retrieve candidates: its rarest
    3-grams, at least `min_grams`, then more within `budget`.

    index (NgramIndex): The index.
    batch (scipy.sparse.csr_matrix): Query rows in the index's bucket space.
    budget (int): Posting entries per query.
    min_grams (int): 3-grams always used.
    RETURNS (np.ndarray): bool per entry of `batch`.
    """
    lengths = index.posting_len[batch.indices]
    row_of = np.repeat(np.arange(batch.shape[0]), np.diff(batch.indptr))
    order = np.lexsort((lengths, row_of))  # rows stay in place, rarest first within a row
    cum = np.cumsum(lengths[order])
    before_row = np.concatenate([[0], cum])[batch.indptr[:-1]]
    within = cum - before_row[row_of]
    rank = np.arange(len(order)) - batch.indptr[:-1][row_of]
    mask = np.zeros(len(order), dtype=bool)
    mask[order] = (rank < min_grams) | (within <= budget)
    return mask


def _shortlist(
    index: "NgramIndex", batch: sp.csr_matrix, n_grams: np.ndarray, *, budget: int, min_grams: int, rescore: int
) -> Tuple[np.ndarray, np.ndarray]:
    """Candidates of each query: the `rescore` best rows by the partial
    score of its retrieval 3-grams, scaled down for rows with fewer 3-grams
    than the query (`_length_factor`).

    n_grams (np.ndarray): 3-grams of each query in the batch.
    RETURNS (Tuple[np.ndarray, np.ndarray]): int64 query and row per candidate.
    """
    retrieve = retrieval_mask(index, batch, budget, min_grams)
    rare = sp.csr_matrix(
        (np.where(retrieve, batch.data, 0).astype(np.float32), batch.indices.copy(), batch.indptr.copy()),
        shape=batch.shape,
    )
    rare.eliminate_zeros()
    partial = (rare @ index.postings).tocsr()
    q, pos = _best_of_rows(partial.indptr, rescore, lambda i, lo, hi: _ranking_key(index, partial, i, n_grams[i]))
    return q, partial.indices[pos].astype(np.int64)


def _best_of_rows(
    indptr: np.ndarray, k: int, key: Callable[[int, int, int], np.ndarray]
) -> Tuple[np.ndarray, np.ndarray]:
    """Positions of the (up to) k largest keys of each CSR row: a long row's
    best by argpartition (linear), a short row whole. Keys are asked for row
    by row, for long rows only: arrays the size of the whole product
    (millions of entries at a million names) cost more than this loop.

    indptr (np.ndarray): Row offsets.
    k (int): Entries kept per row.
    key (Callable[[int, int, int], np.ndarray]): (row, lo, hi) -> the keys
        of the row's entries lo:hi.
    RETURNS (Tuple[np.ndarray, np.ndarray]): int64 row and position per kept entry.
    """
    kept = [
        np.arange(indptr[i], indptr[i + 1])
        if indptr[i + 1] - indptr[i] <= k
        else indptr[i] + np.argpartition(-key(i, indptr[i], indptr[i + 1]), k)[:k]
        for i in range(len(indptr) - 1)
    ]
    q = np.repeat(np.arange(len(kept), dtype=np.int64), [len(x) for x in kept])
    return q, (np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64))


def length_factor(index: "NgramIndex", rows: np.ndarray, n_grams: np.ndarray) -> np.ndarray:
    """(fewer 3-grams / more 3-grams of each row and its query) ** LENGTH_POWER
    (see `_ranking_key` for why).

    index (NgramIndex): The index.
    rows (np.ndarray): Rows.
    n_grams (np.ndarray): 3-grams of each row's query, or one count for all;
        float32 gives float32 factors, an integer count float64 (numpy's
        promotion against the rows' float32 counts).
    RETURNS (np.ndarray): The factors.
    """
    counts = index.row_grams[rows].astype(np.float32)
    return (np.minimum(counts, n_grams) / np.maximum(np.maximum(counts, n_grams), 1)) ** LENGTH_POWER


def _ranking_key(index: "NgramIndex", partial: sp.csr_matrix, i: int, n_grams: int) -> np.ndarray:
    """Shortlist key of query i's candidates: the partial cosine times
    (fewer 3-grams / more 3-grams of the row and the query) ** LENGTH_POWER.

    Why: the few rare 3-grams that retrieve are shared by many names, and
    among those the partial cosine favours the short ones (their weights are
    divided by a small norm), while a name one edit from the query has about
    as many 3-grams as the query. The shortlist then keeps the names of the
    query's length, which raised the typo hit rate at the same budget
    (`benchmarks/results/kb_scale.md`).
    """
    lo, hi = partial.indptr[i], partial.indptr[i + 1]
    return partial.data[lo:hi] * length_factor(index, partial.indices[lo:hi], n_grams)


def _exact_scores(index: "NgramIndex", batch: sp.csr_matrix, q: np.ndarray, rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Cosine of each (query, row) pair from the index's forward rows.

    slots (np.ndarray): int64 scratch of -1 per bucket (left as found).
    RETURNS (np.ndarray): float32 scores.
    """
    indptr, indices, data = index.forward
    which, pos = csr_positions(indptr, rows)
    # The batch's distinct 3-grams become columns of a small dense table.
    grams = distinct(batch.indices)
    slots[grams] = np.arange(len(grams))
    table = np.zeros((batch.shape[0], len(grams) + 1), dtype=np.float32)  # last column: absent
    row_of = np.repeat(np.arange(batch.shape[0]), np.diff(batch.indptr))
    table[row_of, slots[batch.indices]] = batch.data
    width = len(grams) + 1
    col = slots[indices[pos]]
    slots[grams] = -1
    col[col < 0] = width - 1  # the zero column
    weights = table.ravel()[(q * width)[which] + col] * data[pos]
    return np.bincount(which, weights=weights, minlength=len(rows)).astype(np.float32)


def _top(q: np.ndarray, rows: np.ndarray, scores: np.ndarray, *, top_n: int, min_score: float) -> Flat:
    """The best `top_n` rows per query, best first, ties by row; rows
    scoring 0 or below `min_score` dropped."""
    # Rounding can push a perfect match a hair over 1, where it would beat
    # an exact match of the same name.
    scores = np.minimum(scores, np.float32(1.0))
    order = np.lexsort((rows, -scores, q))
    q, rows, scores = q[order], rows[order], scores[order]
    rank = np.arange(len(q)) - np.searchsorted(q, q)
    keep = (rank < top_n) & (scores > 0) & (scores >= min_score)
    return q[keep], rows[keep], scores[keep]
