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
from typing import TYPE_CHECKING, Callable, List, Optional, Protocol, Sequence, Tuple

import numpy as np
import scipy.sparse as sp

from .csr import best_per_query, csr_positions, distinct
from .words import shortlist_indexes

if TYPE_CHECKING:  # pragma: no cover
    from .words import WordIndex


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
# How hard the shortlist key penalises a length (3-gram count) unlike the
# query's: of 1, 2 and 4, 4 kept most typo matches at every budget tried.
LENGTH_POWER = 4


def search_flat(
    indexes: Sequence["NgramIndex"],
    queries: sp.csr_matrix,
    *,
    top_n: int,
    budget: int,
    min_grams: int,
    rescore: int,
    batch_size: int,
    min_score: float,
    words: Optional[Sequence[Optional["WordIndex"]]] = None,
    texts: Optional[Sequence[str]] = None,
    word_budget: int = 0,
    word_rescore: int = 0,
    grams: bool = True,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows most similar to each query vector in several indexes (a
    KB's segments), searched as one (see `NgramIndex.search`): the
    candidates rescored per query and the rows returned per query are
    counted over all indexes, so they do not grow with the number of
    segments.

    indexes (Sequence[NgramIndex]): The indexes (one idf for all).
    queries (scipy.sparse.csr_matrix): Unit query rows in bucket space.
    top_n (int): Rows per query, over all indexes.
    budget (int): Posting entries read per query for 3-gram retrieval, per
        index (0: exact search).
    min_grams (int): Rarest 3-grams always used for retrieval.
    rescore (int): Candidates of the 3-gram retrieval scored exactly per query.
    batch_size (int): Queries per sparse product.
    min_score (float): Drop rows scoring below this.
    words (Optional[Sequence[Optional[WordIndex]]]): Each index's word
        index (None: retrieve through its 3-grams only).
    texts (Optional[Sequence[str]]): The normalised query strings (with `words`).
    word_budget (int): Posting entries read per query through words.
    word_rescore (int): Candidates of the word retrieval scored per query.
    grams (bool): Also retrieve through 3-grams where there are words
        (the union of both); an index without words always does.
    RETURNS (Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]): int64
        index, query and row, float32 cosine; by query, best first within a
        query (ties by index, then row).
    """
    words = list(words) if words is not None else [None] * len(indexes)
    local = [index.to_local(queries) for index in indexes]
    n_grams = np.diff(queries.indptr)  # the query's 3-grams, the index's or not
    slots = [np.full(len(index.buckets), -1, dtype=np.int64) for index in indexes]
    parts: List[Tuple[np.ndarray, ...]] = []
    for start in range(0, queries.shape[0], batch_size):
        end = min(start + batch_size, queries.shape[0])
        batches = [_sorted_rows(m, start, end) for m in local]
        counts = n_grams[start:end]
        # Per index: (query, row) candidates (a whole product's best when searching exactly).
        found: List[List[Tuple[np.ndarray, ...]]] = [[] for _ in indexes]
        with_words = [i for i, w in enumerate(words) if w is not None and texts is not None]
        if with_words:
            picked = shortlist_indexes(
                [words[i] for i in with_words], texts[start:end],  # type: ignore[index,misc]
                [_factor(indexes[i], counts) for i in with_words], budget=word_budget, rescore=word_rescore,
            )
            _collect(found, with_words, picked)
        by_grams = [i for i in range(len(indexes)) if grams or i not in with_words]
        if by_grams and budget > 0:
            shortlists = [
                _shortlist(indexes[i], batches[i], counts, budget=budget, min_grams=min_grams, rescore=rescore)
                for i in by_grams
            ]
            _collect(found, by_grams, best_per_query(shortlists, rescore))
        scored = []
        for i, index in enumerate(indexes):
            if i in by_grams and budget <= 0:  # exact search finds every row a shortlist could add
                q, rows, scores = _product_best(index, batches[i], top_n)
            else:
                q, rows = _union(found[i], n_rows=index.n_rows)
                scores = _exact_scores(index, batches[i], q, rows, slots[i])
            scored.append((np.full(len(q), i, dtype=np.int64), q, rows, scores))
        which, q, rows, scores = _top(*(np.concatenate(c) for c in zip(*scored)), top_n=top_n, min_score=min_score)
        parts.append((which, q + start, rows, scores))
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return tuple(np.concatenate(c) for c in zip(*parts))  # type: ignore[return-value]


def _collect(found: List[List[Tuple[np.ndarray, ...]]], which: List[int], picked: Sequence[Flat]) -> None:
    """Add each picked (query, row, key) shortlist to its index's candidates."""
    for i, (q, rows, _) in zip(which, picked):
        found[i].append((q, rows))


def _sorted_rows(matrix: sp.csr_matrix, start: int, end: int) -> sp.csr_matrix:
    batch = matrix[start:end]
    batch.sort_indices()
    return batch


def _factor(index: "NgramIndex", counts: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """(query, rows) -> length factors of the rows against the batch's queries."""
    return lambda q, rows: length_factor(index, rows, counts[q].astype(np.float32))


def _product_best(index: "NgramIndex", batch: sp.csr_matrix, top_n: int) -> Flat:
    """Each query's `top_n` rows by exact cosine over all its 3-grams."""
    product = (batch @ index.postings).tocsr()
    # Each row's best top_n first: the product is too long to sort whole.
    q, pos = _best_of_rows(product.indptr, top_n, lambda i, lo, hi, p=product: p.data[lo:hi])
    return q, product.indices[pos].astype(np.int64), product.data[pos]


def _union(found: List[Tuple[np.ndarray, ...]], *, n_rows: int) -> Tuple[np.ndarray, np.ndarray]:
    """Distinct (query, row) candidates of several retrievals, by query.

    found (List[Tuple[np.ndarray, ...]]): (query, row) arrays.
    n_rows (int): Rows of the index.
    RETURNS (Tuple[np.ndarray, np.ndarray]): int64 query and row.
    """
    if len(found) == 1:
        return found[0][0], found[0][1]
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
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
) -> Flat:
    """Candidates of each query: the `rescore` best rows by the partial
    score of its retrieval 3-grams, scaled down for rows with fewer 3-grams
    than the query (`_length_factor`).

    n_grams (np.ndarray): 3-grams of each query in the batch.
    RETURNS (Flat): int64 query and row, float32 shortlist key per candidate.
    """
    retrieve = retrieval_mask(index, batch, budget, min_grams)
    rare = sp.csr_matrix(
        (np.where(retrieve, batch.data, 0).astype(np.float32), batch.indices.copy(), batch.indptr.copy()),
        shape=batch.shape,
    )
    rare.eliminate_zeros()
    partial = (rare @ index.postings).tocsr()
    q, pos = _best_of_rows(partial.indptr, rescore, lambda i, lo, hi: _ranking_key(index, partial, i, n_grams[i]))
    rows = partial.indices[pos].astype(np.int64)
    return q, rows, partial.data[pos] * length_factor(index, rows, n_grams[q].astype(np.float32))


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


def _top(
    which: np.ndarray, q: np.ndarray, rows: np.ndarray, scores: np.ndarray, *, top_n: int, min_score: float
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The best `top_n` (index, row) items per query, best first, ties by
    index and row; items scoring 0 or below `min_score` dropped."""
    # Rounding can push a perfect match a hair over 1, where it would beat
    # an exact match of the same name.
    scores = np.minimum(scores, np.float32(1.0))
    order = np.lexsort((rows, which, -scores, q))
    which, q, rows, scores = which[order], q[order], rows[order], scores[order]
    rank = np.arange(len(q)) - np.searchsorted(q, q)
    keep = (rank < top_n) & (scores > 0) & (scores >= min_score)
    return which[keep], q[keep], rows[keep], scores[keep]
