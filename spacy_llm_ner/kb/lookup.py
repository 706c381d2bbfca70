"""Vectorised look-ups of many strings at once in the KB's segments.

The cascade (`candidates.generate`) used to look each mention up on its own:
a trie look-up, then a handful of small numpy slices per segment and per
stage. Those slices cost more in numpy's per-call overhead than the look-up
itself, so a batch is now looked up as flat arrays: the trie key of every
string (the one Python loop left), then one CSR gather over all keys, and
P(entity | string) for all groups at once with `np.bincount`.

A `Hits` holds flat, equally long columns: which group (query) each hit
belongs to, the entity's global row, P(entity | string), and where its
matched alias is (segment and alias key, or -1 for "the query text itself").
"""
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, List, Optional, Sequence

import numpy as np

from .csr import SortedProbes, csr_positions
from .string_index import hash_strings

if TYPE_CHECKING:  # pragma: no cover
    import marisa_trie

    from .segment import Segment


@dataclass
class Hits:
    """Flat look-up results.

    group (np.ndarray): int64 group (query) of each hit.
    row (np.ndarray): int64 global entity row.
    prior (np.ndarray): float64 P(entity | string) within the group.
    seg (np.ndarray): int32 segment of the matched alias.
    alias (np.ndarray): int64 alias key in that segment; -1: the looked-up
        string itself is the alias (exact stage).
    """

    group: np.ndarray
    row: np.ndarray
    prior: np.ndarray
    seg: np.ndarray
    alias: np.ndarray

    @classmethod
    def empty(cls) -> "Hits":
        return cls(*(np.zeros(0, dtype=t) for t in (np.int64, np.int64, np.float64, np.int32, np.int64)))

    def __len__(self) -> int:
        return len(self.row)


def trie_keys(trie: "marisa_trie.Trie", strings: Sequence[Optional[str]]) -> np.ndarray:
    """Key of each string in a trie.

    trie (marisa_trie.Trie): The trie.
    strings (Sequence[Optional[str]]): Strings (None or "" never match).
    RETURNS (np.ndarray): int64 keys, -1 where absent.
    """
    get = trie.get
    return np.array([get(s, -1) if s else -1 for s in strings], dtype=np.int64)


def segment_keys(seg: "Segment", kind: str, strings: Sequence[Optional[str]], hashed: List[Any]) -> np.ndarray:
    """Key of each string among a segment's aliases or normal forms: by
    hash where the segment has its names' hashes, else by trie.

    seg (Segment): The segment.
    kind (str): "alias" or "norm".
    strings (Sequence[Optional[str]]): Strings (None or "" never match).
    hashed (List): The strings' hashes (sorted once) and presence, filled
        on first use so that all segments share them.
    RETURNS (np.ndarray): int64 keys, -1 where absent.
    """
    index = seg.alias_hashes if kind == "alias" else seg.norm_hashes
    if index is None:
        return trie_keys(seg.aliases if kind == "alias" else seg.norms, strings)
    if not hashed:
        hashes, present = hash_strings(strings)
        hashed.extend([SortedProbes(hashes), present])
    return index.keys(hashed[0], hashed[1])


def gather(
    segments: Sequence["Segment"],
    starts: np.ndarray,
    kind: str,
    strings: Sequence[Optional[str]],
    *,
    keys: Optional[List[Optional[np.ndarray]]] = None,
) -> Hits:
    """Entities named by each string, in every segment, with
    P(entity | string) by Bayes' rule over all of them (`entity_given_alias`).

    segments (Sequence[Segment]): The KB's segments.
    starts (np.ndarray): Global row of each segment's first entity.
    kind (str): "alias" (surface strings) or "norm" (normalised strings).
    strings (Sequence[Optional[str]]): One per group; None: no look-up.
    keys (Optional[List[Optional[np.ndarray]]]): Known keys per segment
        (-1: absent) instead of trie look-ups (None entries: look up).
    RETURNS (Hits): Hits by group, segments in order within a group.
    """
    parts: List[Hits] = []
    entity_priors: List[np.ndarray] = []
    hashed: List[Any] = []
    for s, seg in enumerate(segments):
        known = None if keys is None else keys[s]
        if known is None:
            known = segment_keys(seg, kind, strings, hashed)
        found = np.flatnonzero(known >= 0)
        if len(found) == 0:
            continue
        if kind == "alias":
            which, pos = csr_positions(seg.alias_indptr, known[found])
            local, p = seg.alias_ent[pos], seg.alias_p[pos]
            alias = np.full(len(pos), -1, dtype=np.int64)
        else:
            which, pos = csr_positions(seg.norm_indptr, known[found])
            local, p, alias = seg.norm_ent[pos], seg.norm_p[pos], seg.norm_alias[pos].astype(np.int64)
        parts.append(
            Hits(
                group=found[which], row=local.astype(np.int64) + int(starts[s]), prior=np.asarray(p, np.float64),
                seg=np.full(len(pos), s, dtype=np.int32), alias=alias,
            )
        )
        entity_priors.append(np.asarray(seg.prior[local], dtype=np.float64))
    if not parts:
        return Hits.empty()
    entity_prior = np.concatenate(entity_priors)
    hits = concat(parts)
    if len(parts) > 1:  # segments in order within each group
        order = np.argsort(hits.group, kind="stable")
        hits, entity_prior = take(hits, order), entity_prior[order]
    hits.prior = posterior(hits.group, hits.prior, entity_prior, n_groups=len(strings))
    return hits


def posterior(group: np.ndarray, p_alias: np.ndarray, entity_prior: np.ndarray, *, n_groups: int) -> np.ndarray:
    """P(entity | alias) within each group, as `entity_given_alias` computes
    it for one group: unknown (NaN) entity priors take the mean of the
    group's known ones (1 when none is known); uniform when all weights are 0.

    group (np.ndarray): Group of each item.
    p_alias (np.ndarray): P(alias | entity) of each item.
    entity_prior (np.ndarray): P(entity), NaN where unknown.
    n_groups (int): Number of groups.
    RETURNS (np.ndarray): float64 probabilities.
    """
    known = ~np.isnan(entity_prior)
    n_known = np.bincount(group, weights=known, minlength=n_groups)
    known_sum = np.bincount(group, weights=np.where(known, entity_prior, 0.0), minlength=n_groups)
    fill = np.divide(known_sum, n_known, out=np.ones(n_groups), where=n_known > 0)
    weight = np.where(known, entity_prior, fill[group]) * p_alias
    total = np.bincount(group, weights=weight, minlength=n_groups)[group]
    size = np.bincount(group, minlength=n_groups)[group]
    return np.where(total > 0, weight / np.where(total > 0, total, 1.0), 1.0 / size)


def concat(parts: Sequence[Hits]) -> Hits:
    """Hits one after the other.

    parts (Sequence[Hits]): Hits.
    RETURNS (Hits): All of them.
    """
    if len(parts) == 1:
        return parts[0]
    return Hits(*(np.concatenate([getattr(h, f) for h in parts]) for f in ("group", "row", "prior", "seg", "alias")))


def take(hits: Hits, index: np.ndarray) -> Hits:
    """Some of the hits.

    hits (Hits): Hits.
    index (np.ndarray): Positions or mask.
    RETURNS (Hits): The selected hits.
    """
    return Hits(hits.group[index], hits.row[index], hits.prior[index], hits.seg[index], hits.alias[index])
