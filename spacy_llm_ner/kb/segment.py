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

marisa-trie was chosen over a Python dict by measurement: for the 2,024,155
distinct names of the 1M-entity benchmark KB (about 25 characters each) the
trie takes 7.9 bytes per key, a dict str -> int 78 bytes per entry plus 80
per str object; and the trie memory-maps.
"""
import math
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import marisa_trie
import numpy as np

from .ngrams import Idf, NgramIndex
from .normalize import normalize
from .records import EntityRecord, KBFormatError
from .storage import StringTable, group_csr, trie_key_ids

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
        for name in (
            "row_of_id", "id_key", "type_code", "prior", "has_alias_priors", "alt_indptr",
            "ent_alias_indptr", "ent_alias", "alias_indptr", "alias_ent", "alias_p",
            "norm_indptr", "norm_ent", "norm_p", "norm_alias", "alt_key_indptr", "alt_key_ent",
        ):
            setattr(self, name, arrays[name])

    def __len__(self) -> int:
        return len(self.id_key)

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
        ids: List[str] = []
        seen: Dict[str, int] = {}
        names: List[str] = []
        descs: List[str] = []
        type_index: Dict[str, int] = {}
        type_code: List[int] = []
        prior: List[float] = []
        has_ap: List[bool] = []
        alt_flat: List[str] = []
        alt_count: List[int] = []
        alias_local: Dict[str, int] = {}
        pair_alias: List[int] = []
        pair_p: List[float] = []
        pair_count: List[int] = []
        for rec in records:
            rec.validate()
            if rec.id in seen or taken(rec.id):
                raise KBFormatError(f"duplicate entity id {rec.id!r}", field="id")
            seen[rec.id] = len(ids)
            ids.append(rec.id)
            names.append(rec.name)
            descs.append(rec.description)
            type_code.append(type_index.setdefault(rec.type, len(type_index)))
            prior.append(math.nan if rec.prior is None else float(rec.prior))
            has_ap.append(bool(rec.alias_priors))
            alt = list(dict.fromkeys(rec.alt_ids))
            alt_flat.extend(alt)
            alt_count.append(len(alt))
            probs = rec.alias_probabilities()
            for alias, p in probs.items():
                pair_alias.append(alias_local.setdefault(alias, len(alias_local)))
                pair_p.append(p)
            pair_count.append(len(probs))
        n = len(ids)
        arrays: Dict[str, np.ndarray] = {}
        id_trie = marisa_trie.Trie(ids)
        id_key = trie_key_ids(id_trie, ids)
        row_of_id = np.empty(len(id_key), dtype=np.int32)
        row_of_id[id_key] = np.arange(n, dtype=np.int32)
        arrays.update(row_of_id=row_of_id, id_key=id_key)
        arrays.update(StringTable.from_strings(names).arrays("name"))
        arrays.update(StringTable.from_strings(descs).arrays("desc"))
        arrays["type_code"] = np.asarray(type_code, dtype=np.int32)
        arrays["prior"] = np.asarray(prior, dtype=np.float32)
        arrays["has_alias_priors"] = np.asarray(has_ap, dtype=np.uint8)
        del names, descs, type_code, prior, has_ap, seen

        # Alternative ids, by row and reverse.
        arrays.update(StringTable.from_strings(alt_flat).arrays("alt"))
        arrays["alt_indptr"] = _indptr(alt_count)
        alt_trie = marisa_trie.Trie(alt_flat)
        alt_keys = trie_key_ids(alt_trie, alt_flat)
        alt_rows = np.repeat(np.arange(n, dtype=np.int32), alt_count)
        order, arrays["alt_key_indptr"] = group_csr(alt_keys, len(alt_trie))
        arrays["alt_key_ent"] = alt_rows[order]

        # Surface aliases.
        alias_strings = list(alias_local)
        del alias_local
        alias_trie = marisa_trie.Trie(alias_strings)
        alias_key_of_local = trie_key_ids(alias_trie, alias_strings)
        local = np.asarray(pair_alias, dtype=np.int64)
        pair_key = alias_key_of_local[local]
        pair_ent = np.repeat(np.arange(n, dtype=np.int32), pair_count)
        p_arr = np.asarray(pair_p, dtype=np.float32)
        del pair_alias, pair_p
        arrays["ent_alias_indptr"] = _indptr(pair_count)
        arrays["ent_alias"] = pair_key
        order, arrays["alias_indptr"] = group_csr(pair_key, len(alias_trie))
        arrays["alias_ent"] = pair_ent[order]
        arrays["alias_p"] = p_arr[order]

        # Normalised aliases: one key per distinct normal form; an entity's
        # surface forms that collapse together add up their P(alias|entity).
        norm_local: Dict[str, int] = {}
        norm_of_alias = np.fromiter(
            (norm_local.setdefault(normalize(a), len(norm_local)) for a in alias_strings),
            dtype=np.int64,
            count=len(alias_strings),
        )
        norm_local.pop("", None)  # nothing alphanumeric: not indexable
        norm_strings = list(norm_local)
        norm_trie = marisa_trie.Trie(norm_strings)
        key_of_norm_local = np.full(len(norm_local) + 1, -1, dtype=np.int64)
        for s, i in norm_local.items():
            key_of_norm_local[i] = norm_trie[s]
        pair_norm = key_of_norm_local[norm_of_alias[local]]
        keep = pair_norm >= 0
        pn, pe, pp, pa = pair_norm[keep], pair_ent[keep], p_arr[keep], pair_key[keep]
        order = np.lexsort((-pp, pe, pn))
        pn, pe, pp, pa = pn[order], pe[order], pp[order], pa[order]
        first = np.ones(len(pn), dtype=bool)
        first[1:] = (pn[1:] != pn[:-1]) | (pe[1:] != pe[:-1])
        starts = np.flatnonzero(first)
        arrays["norm_ent"] = pe[starts]
        arrays["norm_alias"] = pa[starts].astype(np.int32)
        arrays["norm_p"] = (
            np.minimum(1.0, np.add.reduceat(pp, starts)) if len(starts) else np.zeros(0)
        ).astype(np.float32)
        arrays["norm_indptr"] = _indptr(np.bincount(pn[starts], minlength=len(norm_trie)))
        texts = [""] * len(norm_trie)
        for s in norm_strings:
            texts[norm_trie[s]] = s
        ngrams = NgramIndex.build(texts, idf=idf)
        arrays.update({f"ng_{k}": v for k, v in ngrams.arrays().items()})
        tries = {"ids": id_trie, "aliases": alias_trie, "norms": norm_trie, "alt_ids": alt_trie}
        return cls(arrays, tries, {"types": list(type_index)}, ngrams.idf)

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


def _indptr(counts: Iterable[int]) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.int64)
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr
