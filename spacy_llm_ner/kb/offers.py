"""Candidate offers of the cascade as flat columns, and the choice of the
best offer per (mention, entity) for a whole batch at once (`candidates.py`)."""
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

from .csr import run_starts
from .lookup import Hits


@dataclass
class Offers:
    """Offered candidates as flat columns (one item per offer).

    mention, row, score, prio, prior: as in the ranking; seg, alias: where
    the matched alias is (alias -1: the query text); query: which query;
    seq: order of the offer (on a full tie the first offer is kept).
    """

    mention: np.ndarray
    row: np.ndarray
    score: np.ndarray
    prio: np.ndarray
    prior: np.ndarray
    seg: np.ndarray
    alias: np.ndarray
    query: np.ndarray
    seq: np.ndarray

    @classmethod
    def from_hits(
        cls, hits: Hits, *, mention: np.ndarray, query: np.ndarray, score: np.ndarray, prio: np.ndarray, seq: np.ndarray
    ) -> "Offers":
        """Offers of look-up hits.

        hits (Hits): The hits.
        mention, query, score, prio, seq (np.ndarray): Their columns.
        RETURNS (Offers): The offers.
        """
        return cls(
            mention=mention, row=hits.row, score=score, prio=prio, prior=hits.prior, seg=hits.seg, alias=hits.alias,
            query=query, seq=seq,
        )

    @classmethod
    def concat(cls, parts: Sequence["Offers"]) -> "Offers":
        names = [f.name for f in fields(cls)]
        if not parts:
            return cls(*(np.zeros(0, dtype=np.int64) for _ in names))
        return cls(*(np.concatenate([getattr(t, f) for t in parts]) for f in names))

    def take(self, index: np.ndarray) -> "Offers":
        return Offers(*(getattr(self, f.name)[index] for f in fields(self)))


def best_per_row(table: Offers) -> Offers:
    """Each (mention, entity) once, with its best offer: highest score, then
    source priority, then prior, then the first offered.

    table (Offers): Offers.
    RETURNS (Offers): The best offers.
    """
    if len(table.row) == 0:
        return table
    order = np.lexsort((table.seq, -table.prior, table.prio, -table.score, table.row, table.mention))
    return table.take(order[run_starts(table.mention[order], table.row[order])])
