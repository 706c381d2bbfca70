"""Indexing a batch of records into the arrays and tries of a `Segment`.

Building runs in steps, each producing one family of arrays (the layout is
described in `segment.py`): the records are read once into per-entity
columns and an alias table, then turned into the id, entity, alternative-id,
alias, normalised-alias and n-gram arrays in turn. The array names, dtypes
and their order are part of the saved format (the order is the order of
`LinkerKB.to_bytes`), so they must not change.
"""
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import marisa_trie
import numpy as np
import scipy.sparse as sp

from .csr import indptr, run_starts
from .ngrams import Idf, NgramIndex, trigram_features
from .normalize_batch import normalize_batch
from .records import EntityRecord, KBFormatError
from .storage import StringTable, group_csr, trie_key_ids
from .string_index import StringHashes
from .words import WordIndex

Arrays = Dict[str, np.ndarray]
Tries = Dict[str, marisa_trie.Trie]


@dataclass
class EntityColumns:
    """Per-entity values in row order, gathered while the records stream in.

    ids (List[str]): Entity ids.
    names (List[str]): Preferred names.
    descriptions (List[str]): Descriptions.
    type_index (Dict[str, int]): Type -> code, in first-seen order.
    type_code (List[int]): Type code of each entity.
    prior (List[float]): P(entity), NaN where not given.
    has_alias_priors (List[bool]): Whether the record listed alias priors.
    alt_ids (List[str]): Alternative ids of all entities, concatenated.
    alt_count (List[int]): How many of them each entity has.
    """

    ids: List[str] = field(default_factory=list)
    names: List[str] = field(default_factory=list)
    descriptions: List[str] = field(default_factory=list)
    type_index: Dict[str, int] = field(default_factory=dict)
    type_code: List[int] = field(default_factory=list)
    prior: List[float] = field(default_factory=list)
    has_alias_priors: List[bool] = field(default_factory=list)
    alt_ids: List[str] = field(default_factory=list)
    alt_count: List[int] = field(default_factory=list)

    def add(self, rec: EntityRecord) -> None:
        """Append one (validated) record's columns.

        rec (EntityRecord): The record.
        """
        self.ids.append(rec.id)
        self.names.append(rec.name)
        self.descriptions.append(rec.description)
        self.type_code.append(self.type_index.setdefault(rec.type, len(self.type_index)))
        self.prior.append(math.nan if rec.prior is None else float(rec.prior))
        self.has_alias_priors.append(bool(rec.alias_priors))
        alt = list(dict.fromkeys(rec.alt_ids))
        self.alt_ids.extend(alt)
        self.alt_count.append(len(alt))

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class AliasTable:
    """(entity, alias, P(alias|entity)) pairs in entity order; each distinct
    alias string gets a local number in first-seen order.

    local (Dict[str, int]): Alias string -> local number.
    pair_alias (List[int]): Local alias number of each pair.
    pair_p (List[float]): P(alias|entity) of each pair.
    pair_count (List[int]): Pairs per entity.
    """

    local: Dict[str, int] = field(default_factory=dict)
    pair_alias: List[int] = field(default_factory=list)
    pair_p: List[float] = field(default_factory=list)
    pair_count: List[int] = field(default_factory=list)

    def add(self, probs: Dict[str, float]) -> None:
        """Append one entity's names.

        probs (Dict[str, float]): Name -> P(alias|entity), preferred name first.
        """
        for alias, p in probs.items():
            self.pair_alias.append(self.local.setdefault(alias, len(self.local)))
            self.pair_p.append(p)
        self.pair_count.append(len(probs))


@dataclass
class AliasPairs:
    """The alias table as arrays, keyed by the alias trie.

    strings (List[str]): Alias strings by local number.
    string_key (np.ndarray): int64 alias trie key of each string.
    local (np.ndarray): int64 local alias number of each pair.
    key (np.ndarray): int32 alias trie key of each pair.
    ent (np.ndarray): int32 entity row of each pair.
    p (np.ndarray): float32 P(alias|entity) of each pair.
    """

    strings: List[str]
    string_key: np.ndarray
    local: np.ndarray
    key: np.ndarray
    ent: np.ndarray
    p: np.ndarray


def build_parts(
    records: Iterable[EntityRecord], *, idf: Optional[Idf], taken: Callable[[str], bool]
) -> Tuple[Arrays, Tries, Dict, Idf]:
    """Index a batch of records (see `Segment.build`).

    records (Iterable[EntityRecord]): The entities (validated here).
    idf (Optional[Idf]): n-gram idf to reuse, or None to fit one.
    taken (Callable[[str], bool]): Whether an id already exists elsewhere.
    RETURNS (Tuple[Arrays, Tries, Dict, Idf]): The arrays, the tries, the
        meta and the n-gram idf.
    RAISES (KBFormatError): On an invalid record or a duplicate id.
    """
    columns, table = collect(records, taken=taken)
    arrays: Arrays = {}
    id_trie, id_arrays = id_index(columns.ids)
    arrays.update(id_arrays)
    arrays.update(entity_arrays(columns))
    alt_trie, alt_arrays = alt_id_index(columns.alt_ids, columns.alt_count)
    arrays.update(alt_arrays)
    types = list(columns.type_index)
    n_rows = len(columns)
    del columns  # the lists of strings dominate memory at a million entities
    alias_trie, pairs = alias_pairs(table, n_rows)
    arrays.update(alias_arrays(pairs, table.pair_count, len(alias_trie)))
    alias_hashes = StringHashes.build(pairs.strings, pairs.string_key)
    del table
    norm_trie, norm_arrays = norm_index(pairs)
    arrays.update(norm_arrays)
    del pairs
    texts = trie_texts(norm_trie)
    ngrams = NgramIndex.build(texts, idf=idf)
    arrays.update({f"ng_{k}": v for k, v in ngrams.arrays().items()})
    arrays.update({f"wd_{k}": v for k, v in WordIndex.build(texts).arrays().items()})
    arrays.update(alias_hashes.arrays("ah_"))
    arrays.update(StringHashes.build(texts, np.arange(len(texts)), with_of_key=True).arrays("nh_"))
    tries = {"ids": id_trie, "aliases": alias_trie, "norms": norm_trie, "alt_ids": alt_trie}
    return arrays, tries, {"types": types}, ngrams.idf


def collect(records: Iterable[EntityRecord], *, taken: Callable[[str], bool]) -> Tuple[EntityColumns, AliasTable]:
    """Validate the records and gather their columns and names.

    records (Iterable[EntityRecord]): The entities.
    taken (Callable[[str], bool]): Whether an id already exists elsewhere.
    RETURNS (Tuple[EntityColumns, AliasTable]): Columns and alias pairs.
    RAISES (KBFormatError): On an invalid record or a duplicate id.
    """
    columns, table = EntityColumns(), AliasTable()
    seen = set()
    for rec in records:
        rec.validate()
        if rec.id in seen or taken(rec.id):
            raise KBFormatError(f"duplicate entity id {rec.id!r}", field="id")
        seen.add(rec.id)
        columns.add(rec)
        table.add(rec.alias_probabilities())
    return columns, table


def id_index(ids: List[str]) -> Tuple[marisa_trie.Trie, Arrays]:
    """The id trie, and the maps between its keys and the rows.

    ids (List[str]): Entity ids in row order.
    RETURNS (Tuple[marisa_trie.Trie, Arrays]): The trie; row_of_id, id_key.
    """
    trie = marisa_trie.Trie(ids)
    id_key = trie_key_ids(trie, ids)
    row_of_id = np.empty(len(id_key), dtype=np.int32)
    row_of_id[id_key] = np.arange(len(ids), dtype=np.int32)
    return trie, {"row_of_id": row_of_id, "id_key": id_key}


def entity_arrays(columns: EntityColumns) -> Arrays:
    """Names, descriptions, type codes, priors and alias-prior flags by row.

    columns (EntityColumns): The gathered columns.
    RETURNS (Arrays): The arrays.
    """
    arrays: Arrays = {}
    arrays.update(StringTable.from_strings(columns.names).arrays("name"))
    arrays.update(StringTable.from_strings(columns.descriptions).arrays("desc"))
    arrays["type_code"] = np.asarray(columns.type_code, dtype=np.int32)
    arrays["prior"] = np.asarray(columns.prior, dtype=np.float32)
    arrays["has_alias_priors"] = np.asarray(columns.has_alias_priors, dtype=np.uint8)
    return arrays


def alt_id_index(alt_ids: List[str], counts: List[int]) -> Tuple[marisa_trie.Trie, Arrays]:
    """Alternative ids by row (CSR into packed strings) and in reverse (trie
    key -> rows).

    alt_ids (List[str]): All entities' alternative ids, concatenated.
    counts (List[int]): How many each entity has.
    RETURNS (Tuple[marisa_trie.Trie, Arrays]): The trie; alt_data,
        alt_offsets, alt_indptr, alt_key_indptr, alt_key_ent.
    """
    arrays = StringTable.from_strings(alt_ids).arrays("alt")
    arrays["alt_indptr"] = indptr(counts)
    trie = marisa_trie.Trie(alt_ids)
    rows = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    order, arrays["alt_key_indptr"] = group_csr(trie_key_ids(trie, alt_ids), len(trie))
    arrays["alt_key_ent"] = rows[order]
    return trie, arrays


def alias_pairs(table: AliasTable, n_rows: int) -> Tuple[marisa_trie.Trie, AliasPairs]:
    """The alias trie, and the pairs as arrays keyed by it.

    table (AliasTable): The gathered pairs (its string map is emptied).
    n_rows (int): Number of entities.
    RETURNS (Tuple[marisa_trie.Trie, AliasPairs]): The trie and the pairs.
    """
    strings = list(table.local)
    table.local.clear()
    trie = marisa_trie.Trie(strings)
    local = np.asarray(table.pair_alias, dtype=np.int64)
    string_key = trie_key_ids(trie, strings)
    ent = np.repeat(np.arange(n_rows, dtype=np.int32), table.pair_count)
    p = np.asarray(table.pair_p, dtype=np.float32)
    return trie, AliasPairs(strings=strings, string_key=string_key, local=local, key=string_key[local], ent=ent, p=p)


def alias_arrays(pairs: AliasPairs, pair_count: List[int], n_keys: int) -> Arrays:
    """Each entity's names (row -> alias keys, preferred name first) and each
    alias's entities (key -> rows and P(alias|entity)).

    pairs (AliasPairs): The pairs.
    pair_count (List[int]): Pairs per entity.
    n_keys (int): Size of the alias trie.
    RETURNS (Arrays): ent_alias_indptr, ent_alias, alias_indptr, alias_ent,
        alias_p.
    """
    arrays: Arrays = {"ent_alias_indptr": indptr(pair_count), "ent_alias": pairs.key}
    order, arrays["alias_indptr"] = group_csr(pairs.key, n_keys)
    arrays["alias_ent"] = pairs.ent[order]
    arrays["alias_p"] = pairs.p[order]
    return arrays


def norm_index(pairs: AliasPairs) -> Tuple[marisa_trie.Trie, Arrays]:
    """Normalised aliases: one key per distinct normal form; an entity's
    surface forms that collapse together add up their P(alias|entity).

    pairs (AliasPairs): The alias pairs.
    RETURNS (Tuple[marisa_trie.Trie, Arrays]): The trie; norm_ent,
        norm_alias, norm_p, norm_indptr.
    """
    trie, pair_norm = norm_keys(pairs)
    keep = pair_norm >= 0
    pn, pe, pp, pa = pair_norm[keep], pairs.ent[keep], pairs.p[keep], pairs.key[keep]
    # By norm, then entity, most likely surface form first: that form is the
    # one recorded for the (norm, entity) group.
    order = np.lexsort((-pp, pe, pn))
    pn, pe, pp, pa = pn[order], pe[order], pp[order], pa[order]
    starts = np.flatnonzero(run_starts(pn, pe))
    arrays: Arrays = {"norm_ent": pe[starts], "norm_alias": pa[starts].astype(np.int32)}
    arrays["norm_p"] = (
        np.minimum(1.0, np.add.reduceat(pp, starts)) if len(starts) else np.zeros(0)
    ).astype(np.float32)
    arrays["norm_indptr"] = indptr(np.bincount(pn[starts], minlength=len(trie)))
    return trie, arrays


def norm_keys(pairs: AliasPairs) -> Tuple[marisa_trie.Trie, np.ndarray]:
    """The trie of normal forms, and the normal form's key of each pair.

    pairs (AliasPairs): The alias pairs.
    RETURNS (Tuple[marisa_trie.Trie, np.ndarray]): The trie, and int64 keys
        (-1 for a name with nothing alphanumeric: not indexable).
    """
    norm_local: Dict[str, int] = {}
    norm_of_alias = np.fromiter(
        (norm_local.setdefault(n, len(norm_local)) for n in _normalized(pairs.strings)),
        dtype=np.int64,
        count=len(pairs.strings),
    )
    norm_local.pop("", None)
    trie = marisa_trie.Trie(list(norm_local))
    key_of_norm_local = np.full(len(norm_local) + 1, -1, dtype=np.int64)
    for s, i in norm_local.items():
        key_of_norm_local[i] = trie[s]
    return trie, key_of_norm_local[norm_of_alias[pairs.local]]


def _normalized(strings: List[str], *, chunk: int = 4096) -> Iterable[str]:
    """`normalize` of each string, a batch at a time (`normalize_batch`: the
    same strings, several times faster on ASCII batches)."""
    for start in range(0, len(strings), chunk):
        yield from normalize_batch(strings[start : start + chunk])


def trie_texts(trie: marisa_trie.Trie) -> List[str]:
    """The trie's keys in key order (the n-gram index's rows are trie keys).

    trie (marisa_trie.Trie): The trie.
    RETURNS (List[str]): texts[key] is the key's string.
    """
    texts = [""] * len(trie)
    for s, key in trie.items():
        texts[key] = s
    return texts


def fit_idf(records: Sequence[EntityRecord], *, chunk_size: int = 200_000) -> Idf:
    """The n-gram idf `Segment.build` fits on these records (on their
    distinct normalised names), without building the segment: a streamed
    build fits it on the first chunk and then builds every segment with it,
    so that segments can be built in parallel.

    records (Sequence[EntityRecord]): The entities (validated by the build).
    chunk_size (int): Names featurised at a time.
    RETURNS (Idf): The idf.
    """
    names = list(dict.fromkeys(n for rec in records for n in rec.all_names()))
    texts = [t for t in dict.fromkeys(_normalized(names)) if t]
    parts = [trigram_features(texts[i : i + chunk_size]) for i in range(0, max(1, len(texts)), chunk_size)]
    return Idf.fit(parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr"))
