"""Exact look-ups of many strings at once, by 64-bit hash, in a segment's
names (surface aliases or normal forms).

Why: a trie look-up is a Python call per string, and a KB streamed into
segments looks each string up in every segment. At ten segments, the exact
and normalised stages spent their time in those calls, and the n-gram stage
in looking up every name it found in the other segments (to offer all the
entities of a name, with P(entity | name) over all of them). Hashing a
batch of strings is one vectorised pass (`word_hash.string_hashes`); each
segment is then one `np.searchsorted` over its sorted hashes.

Arrays (saved with each segment built since format 4; prefix ``ah_`` for
aliases, ``nh_`` for normal forms): ``hash`` (sorted uint64), ``key`` (the
trie key of each), and for normal forms ``of_key`` (the hash of each key's
string, so that a name found in one segment is looked up in the others
without turning it back into a string). A segment saved before has none
and is looked up through its trie.

Two different strings share a hash with probability about 2**-64 per pair;
at 30 million names, a look-up that should miss hits some other name about
once in 10**12 look-ups.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .csr import SortedProbes
from .word_hash import Packed, string_hashes


_CHUNK = 100_000


def hash_strings(strings: Sequence[Optional[str]]) -> Tuple[np.ndarray, np.ndarray]:
    """The hash of each string.

    strings (Sequence[Optional[str]]): Strings; None and "" never match.
    RETURNS (Tuple[np.ndarray, np.ndarray]): uint64 hashes (0 where None or
        ""), and bool: a string to look up.
    """
    present = np.fromiter(map(bool, strings), dtype=bool, count=len(strings))
    out = np.zeros(len(strings), dtype=np.uint64)
    kept = [s for s in strings if s]
    # In chunks: the code points of millions of names at once (and the
    # powers cached for their length) would dominate a build's memory.
    out[present] = np.concatenate(
        [string_hashes(Packed.of(kept[i : i + _CHUNK])) for i in range(0, len(kept), _CHUNK)] or [out[:0]]
    )
    return out, present


@dataclass
class StringHashes:
    """Sorted hashes of a set of strings and the key of each.

    hash (np.ndarray): uint64 sorted hashes.
    key (np.ndarray): int64 key of each hash's string.
    of_key (Optional[np.ndarray]): uint64 hash of each key's string.
    """

    hash: np.ndarray
    key: np.ndarray
    of_key: Optional[np.ndarray] = None

    @classmethod
    def build(cls, strings: Sequence[str], keys: np.ndarray, *, with_of_key: bool = False) -> "StringHashes":
        """Index strings by hash.

        strings (Sequence[str]): Non-empty distinct strings.
        keys (np.ndarray): The key of each string.
        with_of_key (bool): Also keep each key's hash (keys must then be
            0..len(strings)-1).
        RETURNS (StringHashes): The index.
        """
        hashes, _ = hash_strings(strings)
        order = np.argsort(hashes, kind="stable")
        of_key = None
        if with_of_key:
            of_key = np.zeros(len(strings), dtype=np.uint64)
            of_key[np.asarray(keys, dtype=np.int64)] = hashes
        return cls(hashes[order], np.asarray(keys, dtype=np.int64)[order], of_key)

    def arrays(self, prefix: str) -> Dict[str, np.ndarray]:
        """The arrays to save.

        prefix (str): "ah_" or "nh_".
        RETURNS (Dict[str, np.ndarray]): Named arrays.
        """
        out = {f"{prefix}hash": self.hash, f"{prefix}key": self.key}
        if self.of_key is not None:
            out[f"{prefix}of_key"] = self.of_key
        return out

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray], prefix: str) -> Optional["StringHashes"]:
        """Rebuild from `arrays(prefix)` (possibly memory-mapped).

        RETURNS (Optional[StringHashes]): None when the segment has none.
        """
        if f"{prefix}hash" not in arrays:
            return None
        return cls(arrays[f"{prefix}hash"], arrays[f"{prefix}key"], arrays.get(f"{prefix}of_key"))

    def keys(self, probes: SortedProbes, present: np.ndarray) -> np.ndarray:
        """The key of each hash's string.

        probes (SortedProbes): uint64 hashes (`hash_strings`), sorted once
            for all the segments they are looked up in.
        present (np.ndarray): bool, a string to look up (not None or "").
        RETURNS (np.ndarray): int64 keys, -1 where absent.
        """
        if len(self.hash) == 0:
            return np.full(len(probes.values), -1, dtype=np.int64)
        pos = np.minimum(probes.search(self.hash), len(self.hash) - 1)
        return np.where(present & (self.hash[pos] == probes.values), self.key[pos], -1)
