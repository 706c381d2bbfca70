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


def distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values, by one sort (numpy 2's hash-based
    `np.unique` measured several times slower on these integer arrays).

    values (np.ndarray): Values.
    RETURNS (np.ndarray): Sorted, each once.
    """
    values = np.sort(values)
    if len(values) < 2:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]
