"""Stable 64-bit hashes of many short strings at once, and of their
one-character deletions, with no Python loop per string or per deletion.

A string's code points c_0..c_{L-1} hash to sum_i (c_i + 1) * P**i mod 2**64
(numpy's uint64 arithmetic wraps), mixed with the length. The hash of the
string with character j deleted follows from the prefix sums S_k of those
terms: S_j + (S_L - S_{j+1}) * P**-1 (P is odd, so it has an inverse mod
2**64), which gives every deletion of every string from one cumulative sum.
Equal strings always hash equally, in any process; two different strings
collide with negligible probability, and a collision only adds a candidate
that exact rescoring then ranks (see `words.py`).
"""
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .csr import SortedProbes, indptr, run_starts

_P = np.uint64(0x100000001B3)  # odd: invertible modulo 2**64
_P_INV = np.uint64(pow(0x100000001B3, -1, 1 << 64))
_LEN = np.uint64(0xC2B2AE3D27D4EB4F)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(raw: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Finalise raw polynomial sums with the string lengths."""
    h = (raw ^ (lengths.astype(np.uint64) * _LEN)) * _GOLDEN
    return h ^ (h >> np.uint64(29))


@dataclass
class Packed:
    """Strings as one array of code points.

    cps (np.ndarray): uint64 code points of all strings, one after another.
    starts (np.ndarray): int64 offset of each string.
    lengths (np.ndarray): int64 length of each string.
    """

    cps: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    prefix: Optional[Tuple[np.ndarray, np.ndarray]] = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, strings: Sequence[str]) -> "Packed":
        """Pack strings.

        strings (Sequence[str]): Strings.
        RETURNS (Packed): Them packed.
        """
        lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
        cps = np.frombuffer("".join(strings).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        return cls(cps, _offsets(lengths), lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, index: np.ndarray) -> "Packed":
        """Some of the strings, in the given order.

        index (np.ndarray): int64 string indices.
        RETURNS (Packed): Those strings.
        """
        lengths = self.lengths[index]
        source = np.repeat(self.starts[index] - _offsets(lengths), lengths) + np.arange(int(lengths.sum()))
        return Packed(self.cps[source], _offsets(lengths), lengths)


def words_of(texts: Sequence[str]) -> Tuple[Packed, np.ndarray]:
    """The words (runs of non-space characters) of strings.

    texts (Sequence[str]): Strings.
    RETURNS (Tuple[Packed, np.ndarray]): The words, and the int64 text of each.
    """
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    cps = np.frombuffer(" ".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    inside = np.concatenate([[False], cps != 32, [False]])
    edges = np.flatnonzero(inside[1:] != inside[:-1])
    begin, end = edges[0::2], edges[1::2]
    # Each text takes its length plus one separator.
    text_of = np.searchsorted(np.cumsum(lengths + 1), begin, side="right")
    return Packed(cps, begin.astype(np.int64), (end - begin).astype(np.int64)), text_of.astype(np.int64)


def _offsets(lengths: np.ndarray) -> np.ndarray:
    return indptr(lengths)[:-1]


def _prefix(strings: Packed) -> Tuple[np.ndarray, np.ndarray]:
    """Prefix sums of (c + 1) * P**g over the global positions g of all code
    points, and P**-g: a string's own polynomial (positions counted from its
    start) is a difference of prefix sums times P**-start, which spares
    computing each code point's position within its string. Made once per
    `Packed` (its hashes and its variants' share them)."""
    if strings.prefix is None:
        n = len(strings.cps)
        power, inverse = _powers(n + 1)
        prefix = np.zeros(n + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            np.cumsum((strings.cps + np.uint64(1)) * power[:n], out=prefix[1:])
        strings.prefix = (prefix, inverse[: n + 1])
    return strings.prefix


_POWER_CACHE: List[np.ndarray] = []


def _powers(n: int) -> Tuple[np.ndarray, np.ndarray]:
    """P**g and P**-g for g < n (kept and grown as needed: every batch of
    the same size or smaller reuses them)."""
    if not _POWER_CACHE or len(_POWER_CACHE[0]) < n:
        size = max(n, 2 * len(_POWER_CACHE[0]) if _POWER_CACHE else 1 << 16)
        with np.errstate(over="ignore"):
            power = np.cumprod(np.full(size, _P, dtype=np.uint64))
            inverse = np.cumprod(np.full(size, _P_INV, dtype=np.uint64))
        power[1:], power[0] = power[:-1], 1
        inverse[1:], inverse[0] = inverse[:-1], 1
        _POWER_CACHE[:] = [power, inverse]
    return _POWER_CACHE[0], _POWER_CACHE[1]


def string_hashes(strings: Packed) -> np.ndarray:
    """The hash of each string.

    strings (Packed): Non-empty strings.
    RETURNS (np.ndarray): uint64, one per string.
    """
    if not len(strings):
        return np.zeros(0, dtype=np.uint64)
    prefix, inverse = _prefix(strings)
    starts = strings.starts
    with np.errstate(over="ignore"):
        return _mix((prefix[starts + strings.lengths] - prefix[starts]) * inverse[starts], strings.lengths)


def deletion_hashes(strings: Packed, *, min_len: int) -> Tuple[np.ndarray, np.ndarray]:
    """The hashes of every one-character deletion of the strings at least
    `min_len` long (a deletion that repeats within a string is kept once).

    strings (Packed): Non-empty strings.
    min_len (int): Shorter strings get no deletions.
    RETURNS (Tuple[np.ndarray, np.ndarray]): int64 string index and uint64
        hash of each deletion, by string.
    """
    long = np.flatnonzero(strings.lengths >= min_len)
    if not len(long):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    prefix, inverse = _prefix(strings)
    lengths = strings.lengths[long]
    owner = np.repeat(long, lengths)
    begin = strings.starts[owner]
    end = begin + strings.lengths[owner]
    at = np.repeat(strings.starts[long] - _offsets(lengths), lengths) + np.arange(int(lengths.sum()))
    with np.errstate(over="ignore"):
        # Before the deleted character: positions from `begin`; after it: from `begin + 1`.
        raw = (prefix[at] - prefix[begin]) * inverse[begin] + (prefix[end] - prefix[at + 1]) * inverse[begin + 1]
        hashes = _mix(raw, strings.lengths[owner] - 1)
    # "aab" loses either "a" to the same "ab": one entry per (string, hash).
    order = np.lexsort((hashes, owner))
    owner, hashes = owner[order], hashes[order]
    first = run_starts(owner, hashes)
    return owner[first].astype(np.int64), hashes[first]


def truncation_hashes(strings: Packed, *, max_cut: int, keep: float) -> Tuple[np.ndarray, np.ndarray]:
    """The hashes of the strings with 1 to `max_cut` characters cut from the
    end, keeping at least 2 and at least `keep` of each string's characters
    ("hypertensive" and "hypertension" share "hypertensi").

    strings (Packed): Non-empty strings.
    max_cut (int): Most characters cut.
    keep (float): Share of the characters always kept.
    RETURNS (Tuple[np.ndarray, np.ndarray]): int64 string index and uint64
        hash of each truncation, by string.
    """
    lengths = strings.lengths
    shortest = np.maximum(2, np.ceil(keep * lengths).astype(np.int64))
    n_cuts = np.clip(lengths - shortest, 0, max_cut)
    owner = np.repeat(np.arange(len(strings), dtype=np.int64), n_cuts)
    if not len(owner):
        return owner, np.zeros(0, dtype=np.uint64)
    cut = 1 + np.arange(len(owner)) - np.repeat(_offsets(n_cuts), n_cuts)
    kept = lengths[owner] - cut
    prefix, inverse = _prefix(strings)
    begin = strings.starts[owner]
    with np.errstate(over="ignore"):
        return owner, _mix((prefix[begin + kept] - prefix[begin]) * inverse[begin], kept)


# Variants of a word (words.py) for fuzzy matches:
MIN_FUZZY = 5  # shorter words (acronyms, "type", "ii") get no deletions
# Endings: up to MAX_CUT characters cut, KEEP of the word kept ("asthmatic"
# finds "asthma", "hemorrhagic" "hemorrhage"; "mdd" finds "md").
MAX_CUT, KEEP = 3, 0.6


def word_variants(words: Packed) -> Tuple[np.ndarray, np.ndarray]:
    """One-character deletions (words of MIN_FUZZY characters or more) and
    truncated endings of words: int64 word and uint64 hash of each."""
    del_owner, dels = deletion_hashes(words, min_len=MIN_FUZZY)
    cut_owner, cuts = truncation_hashes(words, max_cut=MAX_CUT, keep=KEEP)
    return np.concatenate([del_owner, cut_owner]), np.concatenate([dels, cuts])


@dataclass
class QueryWords:
    """The words of a batch of normalised queries and their variants,
    hashed once for all the indexes (segments) they are looked up in.

    query_of (np.ndarray): int64 query of each query word.
    hashes (np.ndarray): uint64 hash of each query word.
    owner (np.ndarray): int64 query word of each variant.
    variants (np.ndarray): uint64 hash of each variant.
    """

    query_of: np.ndarray
    hashes: np.ndarray
    owner: np.ndarray
    variants: np.ndarray

    def __post_init__(self) -> None:
        # Every probe, the query words then their variants, sorted once for all tables.
        self.probes = SortedProbes(np.concatenate([self.hashes, self.variants]))

    @classmethod
    def make(cls, texts: Sequence[str]) -> "QueryWords":
        """Hash the words of normalised query strings.

        texts (Sequence[str]): Normalised query strings.
        RETURNS (QueryWords): Their words.
        """
        words, query_of = words_of(texts)
        owner, hashes = word_variants(words)
        return cls(query_of, string_hashes(words), owner, hashes)
