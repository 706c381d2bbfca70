"""One immutable block of the knowledge base: a batch of entities with their
alias, normalised-alias and n-gram indexes.

A `LinkerKB` is a list of segments (the first holds what the KB was built
from, later ones what `add_entities` added), so adding a few entities to a
million-entity KB costs time in proportion to the few, not the million.

Layout (all numpy, memory-mappable; strings in marisa tries or packed UTF-8):

- ``ids`` trie: entity id -> key; ``row_of_id[key]`` -> local row and
  ``id_key[row]`` back. Rows are in insertion order.
- entity columns by row: names and descriptions (packed UTF-8), type codes,
  prior (NaN = not given), alternative ids (CSR into packed UTF-8), the
  entity's names (CSR of alias keys, preferred name first).
- ``aliases`` trie: surface alias -> key; CSR key -> (row, P(alias|entity)).
- ``norms`` trie: normalised alias -> key; CSR key -> (row, P(norm|entity),
  key of the entity's most likely surface alias with that normalisation).
  The n-gram index rows are the norm keys.
- ``alt_ids`` trie: alternative id -> key; CSR key -> rows.

marisa-trie was chosen over a Python dict: a trie takes a small fraction of
the memory of a dict str -> int with its str objects, and it memory-maps
(the million-entity KB's sizes and load times: `benchmarks/results/kb_scale.md`).

Building is in `segment_build.py`.
"""
import math
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import marisa_trie
import numpy as np

from .ngrams import Idf, NgramIndex
from .string_index import StringHashes
from .words import WordIndex
from .records import EntityRecord
from .segment_build import build_parts
from .storage import StringTable

Entries = Tuple[np.ndarray, np.ndarray, np.ndarray]


class Segment:
    """A built, read-only block of entities and their indexes.

    arrays (Dict[str, np.ndarray]): The columns (see module docstring).
    tries (Dict[str, marisa_trie.Trie]): ids, aliases, norms, alt_ids.
    meta (Dict): {"types": [...]}.
    idf (Idf): The KB's n-gram idf.
    """

    def __init__(self, arrays: Dict[str, np.ndarray], tries: Dict[str, marisa_trie.Trie], meta: Dict, idf: Idf) -> None:
        self.arrays = arrays
        self.tries = tries
        self.meta = meta
        self.ids = tries["ids"]
        self.aliases = tries["aliases"]
        self.norms = tries["norms"]
        self.alt_trie = tries["alt_ids"]
        self.types: List[str] = list(meta["types"])
        self.names = StringTable.from_arrays(arrays, "name")
        self.descriptions = StringTable.from_arrays(arrays, "desc")
        self.alt_ids = StringTable.from_arrays(arrays, "alt")
        self.ngrams = NgramIndex.from_arrays(
            {k[3:]: v for k, v in arrays.items() if k.startswith("ng_")}, idf
        )
        # None for a segment saved before word retrieval: the n-gram stage
        # then retrieves through 3-grams.
        self.words = WordIndex.from_arrays({k[3:]: v for k, v in arrays.items() if k.startswith("wd_")})
        # None for a segment saved before format 4: looked up through the tries.
        self.alias_hashes = StringHashes.from_arrays(arrays, "ah_")
        self.norm_hashes = StringHashes.from_arrays(arrays, "nh_")
        for name in (
            "row_of_id", "id_key", "type_code", "prior", "has_alias_priors", "alt_indptr",
            "ent_alias_indptr", "ent_alias", "alias_indptr", "alias_ent", "alias_p",
            "norm_indptr", "norm_ent", "norm_p", "norm_alias", "alt_key_indptr", "alt_key_ent",
        ):
            setattr(self, name, arrays[name])

    def __len__(self) -> int:
        return len(self.id_key)

    def saved_arrays(self) -> Dict[str, np.ndarray]:
        """The arrays to save: the segment's own, plus the n-gram index's
        forward rows where it was loaded from format 1, which lacks them.

        RETURNS (Dict[str, np.ndarray]): Named arrays.
        """
        if "ng_fwd_indptr" in self.arrays:
            return self.arrays
        return {**self.arrays, **{f"ng_{k}": v for k, v in self.ngrams.arrays().items() if k.startswith("fwd_")}}

    # -- building -------------------------------------------------------

    @classmethod
    def build(
        cls,
        records: Iterable[EntityRecord],
        *,
        idf: Optional[Idf] = None,
        taken: Callable[[str], bool] = lambda entity_id: False,
    ) -> "Segment":
        """Index a batch of records.

        records (Iterable[EntityRecord]): The entities (validated here).
        idf (Optional[Idf]): n-gram idf to reuse; default: fit on
            this batch's normalised aliases.
        taken (Callable[[str], bool]): Whether an id already exists elsewhere
            in the KB.
        RETURNS (Segment): The segment.
        RAISES (KBFormatError): On an invalid record or a duplicate id.
        """
        return cls(*build_parts(records, idf=idf, taken=taken))

    # -- look-ups (local rows) -------------------------------------------

    def row(self, entity_id: str) -> Optional[int]:
        """Local row of an entity id, or None."""
        key = self.ids.get(entity_id)
        return None if key is None else int(self.row_of_id[key])

    def entity_id(self, row: int) -> str:
        return self.ids.restore_key(int(self.id_key[row]))

    def rows_with_alt_id(self, alt_id: str) -> np.ndarray:
        key = self.alt_trie.get(alt_id)
        if key is None:
            return np.zeros(0, dtype=np.int32)
        return self.alt_key_ent[self.alt_key_indptr[key] : self.alt_key_indptr[key + 1]]

    def alias_entries(self, alias: str) -> Optional[Entries]:
        """Entities named exactly `alias`.

        alias (str): Surface string.
        RETURNS (Optional[Entries]): (local rows, P(alias|entity), alias keys)
            or None.
        """
        key = self.aliases.get(alias)
        if key is None:
            return None
        lo, hi = self.alias_indptr[key], self.alias_indptr[key + 1]
        return self.alias_ent[lo:hi], self.alias_p[lo:hi], np.full(hi - lo, key, dtype=np.int32)

    def norm_entries(self, norm: str) -> Optional[Entries]:
        """Entities with a name that normalises to `norm`.

        norm (str): Normalised string.
        RETURNS (Optional[Entries]): (local rows, P(norm|entity), keys of the
            matching surface aliases) or None.
        """
        key = self.norms.get(norm)
        return None if key is None else self.norm_entries_by_key(key)

    def norm_entries_by_key(self, key: int) -> Entries:
        lo, hi = self.norm_indptr[key], self.norm_indptr[key + 1]
        return self.norm_ent[lo:hi], self.norm_p[lo:hi], self.norm_alias[lo:hi]

    def alias_string(self, key: int) -> str:
        return self.aliases.restore_key(int(key))

    def norm_string(self, key: int) -> str:
        return self.norms.restore_key(int(key))

    def record(self, row: int) -> EntityRecord:
        """Rebuild the entity's record.

        row (int): Local row.
        RETURNS (EntityRecord): The record (alias priors are the resolved
            P(alias|entity) when the record had any).
        """
        lo, hi = self.ent_alias_indptr[row], self.ent_alias_indptr[row + 1]
        names = [self.alias_string(k) for k in self.ent_alias[lo:hi]]
        name = self.names[row]
        alias_priors: Dict[str, float] = {}
        if self.has_alias_priors[row]:
            for key, alias in zip(self.ent_alias[lo:hi], names):
                a_lo, a_hi = self.alias_indptr[key], self.alias_indptr[key + 1]
                hit = np.flatnonzero(self.alias_ent[a_lo:a_hi] == row)
                alias_priors[alias] = float(self.alias_p[a_lo + hit[0]])
        prior = float(self.prior[row])
        a_lo, a_hi = self.alt_indptr[row], self.alt_indptr[row + 1]
        return EntityRecord(
            id=self.entity_id(row),
            name=name,
            aliases=[a for a in names if a != name],
            description=self.descriptions[row],
            type=self.types[int(self.type_code[row])],
            prior=None if math.isnan(prior) else prior,
            alias_priors=alias_priors,
            alt_ids=[self.alt_ids[i] for i in range(a_lo, a_hi)],
        )

    def records(self) -> Iterator[EntityRecord]:
        for row in range(len(self)):
            yield self.record(row)

    @property
    def n_aliases(self) -> int:
        return len(self.aliases)

    @property
    def n_pairs(self) -> int:
        return len(self.alias_ent)


class EntityIds(Sequence[str]):
    """Read-only view of a KB's entity ids in insertion order."""

    def __init__(self, segments: Sequence[Segment]) -> None:
        self._segments = segments
        self._starts = np.cumsum([0] + [len(s) for s in segments])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        s = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self._segments[s].entity_id(i - int(self._starts[s]))

    def __iter__(self) -> Iterator[str]:
        for seg in self._segments:
            for row in range(len(seg)):
                yield seg.entity_id(row)

    def __contains__(self, entity_id: object) -> bool:
        return isinstance(entity_id, str) and any(s.row(entity_id) is not None for s in self._segments)
