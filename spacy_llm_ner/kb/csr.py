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
