"""Helpers over CSR (compressed sparse row) arrays, shared by the look-up
and n-gram search paths (a leaf module: it imports nothing of the KB)."""
from typing import List, Sequence, Tuple

import numpy as np


def csr_positions(indptr: np.ndarray, keys: np.ndarray) -> "tuple[np.ndarray, np.ndarray]":
    """Positions of all items of the given CSR keys, in key order.

    indptr (np.ndarray): CSR offsets.
    keys (np.ndarray): Keys (all valid).
    RETURNS (tuple): (index into `keys` of each item, item position).
    """
    lo = np.asarray(indptr[keys], dtype=np.int64)
    counts = np.asarray(indptr[keys + 1], dtype=np.int64) - lo
    total = int(counts.sum())
    which = np.repeat(np.arange(len(keys), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    pos = np.arange(total, dtype=np.int64) - np.repeat(starts - lo, counts)
    return which, pos


def indptr(counts: "np.ndarray | list") -> np.ndarray:
    """CSR offsets from group sizes.

    counts: Items per group.
    RETURNS (np.ndarray): int64, len(counts) + 1.
    """
    counts = np.asarray(counts, dtype=np.int64)
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def run_starts(*columns: np.ndarray) -> np.ndarray:
    """Where a new run of equal rows begins in sorted columns: the first
    item, and every item that differs from the one before in any column.

    columns (np.ndarray): Equally long columns, sorted together.
    RETURNS (np.ndarray): bool per item.
    """
    n = len(columns[0])
    first = np.ones(n, dtype=bool)
    if n > 1:
        first[1:] = np.logical_or.reduce([c[1:] != c[:-1] for c in columns])
    return first


def distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values, by one sort (numpy 2's hash-based
    `np.unique` measured several times slower on these integer arrays).

    values (np.ndarray): Values.
    RETURNS (np.ndarray): Sorted, each once.
    """
    values = np.sort(values)
    return values[run_starts(values)]


def unique_inverse(values: np.ndarray) -> "tuple[np.ndarray, np.ndarray, np.ndarray]":
    """`np.unique(values, return_index=True, return_inverse=True)` by one
    stable sort (see `distinct`).

    values (np.ndarray): Values.
    RETURNS (tuple): The sorted distinct values, the first position of
        each, and the int64 index of each value's distinct value.
    """
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new = run_starts(ordered)
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], order[new], inverse


class SortedProbes:
    """Values to look up in sorted arrays (hash tables, posting lists),
    sorted once and searched in each: numpy narrows each search from the one
    before when the needles ascend, which on arrays of millions of entries
    measured several times faster than random probes, sort included.

    values (np.ndarray): The values, in their own order.
    """

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        self._order = np.argsort(values, kind="stable")
        self._sorted = values[self._order]

    def search(self, haystack: np.ndarray, side: str = "left") -> np.ndarray:
        """`np.searchsorted(haystack, values, side)`.

        haystack (np.ndarray): Sorted array.
        side (str): "left" or "right".
        RETURNS (np.ndarray): int64 insertion points, in the values' order.
        """
        out = np.empty(len(self.values), dtype=np.int64)
        out[self._order] = np.searchsorted(haystack, self._sorted, side=side)
        return out


def search_sorted(haystack: np.ndarray, needles: np.ndarray, side: str = "left") -> np.ndarray:
    """`np.searchsorted` with the needles sorted first (`SortedProbes`, for
    one haystack).

    haystack (np.ndarray): Sorted array.
    needles (np.ndarray): Values to find.
    side (str): "left" or "right", as in `np.searchsorted`.
    RETURNS (np.ndarray): int64 insertion points, in the needles' order.
    """
    return SortedProbes(needles).search(haystack, side)


def runs(values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Start and end of each run of equal values in a sorted array."""
    first = np.flatnonzero(run_starts(values))
    return first, np.append(first[1:], len(values))


def best_per_query(
    parts: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]], k: int
) -> List[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The k highest-scoring (query, row) items of each query over all parts,
    returned part by part, by query, best first (ties: earlier part, then
    the order within the part).

    parts (Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]]): Per part:
        query, row, score.
    k (int): Items kept per query.
    RETURNS (List[Tuple[np.ndarray, np.ndarray, np.ndarray]]): The kept items per part.
    """
    part = np.repeat(np.arange(len(parts)), [len(p[0]) for p in parts])
    q, row, score = (np.concatenate([p[i] for p in parts]) for i in range(3))
    # Grouped by query (a stable integer sort), then each long group cut by
    # selection: sorting every candidate by score cost most of a batch.
    grouped = np.argsort(q, kind="stable")
    first, end = runs(q[grouped])
    kept = [
        grouped[a:b] if b - a <= k else grouped[a + _first_best(score[grouped[a:b]], k)]
        for a, b in zip(first.tolist(), end.tolist())
    ]
    chosen = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    chosen = chosen[np.lexsort((-score[chosen], q[chosen]))]
    return [(q[chosen[part[chosen] == i]], row[chosen[part[chosen] == i]], score[chosen[part[chosen] == i]])
            for i in range(len(parts))]


def _first_best(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, ties at the k-th place to the
    earliest (as a stable sort would keep them), ascending."""
    kth = -np.partition(-scores, k - 1)[k - 1]
    above = np.flatnonzero(scores > kth)
    tied = np.flatnonzero(scores == kth)[: k - len(above)]
    return np.sort(np.concatenate([above, tied]))
