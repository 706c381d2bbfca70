"""Helpers over CSR (compressed sparse row) arrays, shared by the look-up
and n-gram search paths (a leaf module: it imports nothing of the KB)."""
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


def search_sorted(haystack: np.ndarray, needles: np.ndarray, side: str = "left") -> np.ndarray:
    """`np.searchsorted` with the needles sorted first (and the results put
    back in their order): numpy narrows each search from the one before
    when the needles ascend, which on arrays of millions of entries
    (memory-mapped hash tables, long posting lists) measured several times
    faster than random probes, sort included.

    haystack (np.ndarray): Sorted array.
    needles (np.ndarray): Values to find.
    side (str): "left" or "right", as in `np.searchsorted`.
    RETURNS (np.ndarray): int64 insertion points, in the needles' order.
    """
    if len(needles) < 2:
        return np.searchsorted(haystack, needles, side=side).astype(np.int64)
    order = np.argsort(needles, kind="stable")
    out = np.empty(len(needles), dtype=np.int64)
    out[order] = np.searchsorted(haystack, needles[order], side=side)
    return out
