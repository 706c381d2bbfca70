"""`LinkerKB`: a scalable spaCy `KnowledgeBase` with a recall-oriented
candidate cascade.

Stock spaCy code sees a `KnowledgeBase`: `get_candidates(span)` returns
`spacy.kb.Candidate` objects (entity hash, alias hash, P(entity | alias)),
and `to_disk` / `from_disk` / `to_bytes` / `from_bytes` work inside a saved
pipeline. The entity linker built on top uses the richer API:
`candidates()` / `candidates_batch()` (scored, with the stage that found
each entity), `entity()`, `resolve_id()`, `add_entities()`.

Why these structures: spaCy's `InMemoryLookupKB` keeps every alias and
entity id in the shared `StringStore` and a C struct per alias, and reads
everything back on load. Here the strings live in marisa tries, the alias ->
entity lists and priors in numpy CSR arrays, names and descriptions as packed
UTF-8, all saved as .npy / .marisa files that `from_disk` memory-maps, so
loading takes next to no time or memory whatever the KB's size, and the
cascade finds entities for changed case and typos that an exact look-up
misses. Building costs more time and memory, mostly the n-gram index, which
is also most of the size on disk. The measurements at a million entities are
in ``benchmarks/results/kb_scale.md`` (made by ``benchmarks/kb_scale.py``).
The n-gram index is described in `ngrams.py`.

Storage is a list of immutable segments (see `segment.py`): `add_entities`
indexes only the new records; small segments are merged automatically and
`compact()` rebuilds a single one. Saving and loading: `persistence.py`.
"""
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from spacy.kb import Candidate, KnowledgeBase
from spacy.tokens import Doc, Span
from spacy.util import SimpleFrozenList, ensure_path
from spacy.vocab import Vocab

from .candidates import STAGES, AbbreviationMaps, CascadeConfig, DocAbbreviations, ScoredCandidate, generate
from .persistence import (
    FORMAT_VERSION,
    check_folder,
    kb_settings,
    load_folder,
    loading,
    read_settings,
    save_folder,
    store_from_bytes,
    store_to_bytes,
)
from .records import EntityRecord
from .segment import EntityIds, Segment
from .store import MAX_EXTRA_SEGMENTS, EntityStore

__all__ = ["FORMAT_VERSION", "MAX_EXTRA_SEGMENTS", "EntityIds", "LinkerKB"]


class LinkerKB(KnowledgeBase):
    """Knowledge base for entity linking, built from `EntityRecord`s.

    vocab (Vocab): The pipeline's vocab (entity ids and matched aliases are
        added to its StringStore only when returned as spaCy Candidates).
    entity_vector_length (int): Length of optional entity vectors (0: none;
        stock spaCy `EntityLinker` training needs them, see `set_vectors`).
    top_k (int): Candidates returned per mention by default.
    stages (Sequence[str]): Cascade stages, a subset of
        ("exact", "normalized", "ngram", "abbreviation").
    min_ngram_score (float): Drop n-gram matches below this cosine.
    use_doc_abbreviations (bool): `get_candidates(span)` finds the
        abbreviations defined in `span.doc` (Schwartz & Hearst) and uses them.
    mmap (bool): `from_disk` memory-maps the saved arrays and tries.
    """

    def __init__(
        self,
        vocab: Vocab,
        entity_vector_length: int = 0,
        *,
        top_k: int = 10,
        stages: Sequence[str] = STAGES,
        min_ngram_score: float = 0.0,
        use_doc_abbreviations: bool = True,
        mmap: bool = True,
    ) -> None:
        super().__init__(vocab, entity_vector_length)
        self._vector_length = int(entity_vector_length)
        self.config = CascadeConfig(top_k=top_k, stages=tuple(stages), min_ngram_score=min_ngram_score)
        self.use_doc_abbreviations = use_doc_abbreviations
        self.mmap = mmap
        self._store = EntityStore.empty(entity_vector_length)
        self._doc_abbreviations = DocAbbreviations()

    @property  # type: ignore[override]
    def entity_vector_length(self) -> int:
        """Length of the entity vectors. Shadows the base class's read-only C
        field so that loading a saved KB can adopt the saved length, as
        spaCy's InMemoryLookupKB does."""
        return self._vector_length

    @property
    def _segments(self) -> List[Segment]:
        return self._store.segments

    # -- building ---------------------------------------------------------

    @classmethod
    def from_records(
        cls, vocab: Vocab, records: Iterable[EntityRecord], *, entity_vector_length: int = 0, **options: Any
    ) -> "LinkerKB":
        """Build a KB.

        vocab (Vocab): The vocab.
        records (Iterable[EntityRecord]): The entities (streamed once).
        entity_vector_length (int): See the class.
        **options: Keyword options of the class (top_k, stages, ...).
        RETURNS (LinkerKB): The KB.
        """
        kb = cls(vocab, entity_vector_length, **options)
        kb.add_entities(records)
        return kb

    def add_entities(self, records: Iterable[EntityRecord], *, vectors: Optional[np.ndarray] = None) -> int:
        """Add entities; they are found by every stage at once, no retraining
        of the linker needed.

        records (Iterable[EntityRecord]): New entities (ids must be new).
        vectors (Optional[np.ndarray]): (n, entity_vector_length) vectors for
            them; default zeros.
        RETURNS (int): The number of entities added.
        RAISES (KBFormatError): On an invalid record or an id already present.
        """
        return self._store.add(records, vectors=vectors, vector_length=self.entity_vector_length)

    def compact(self) -> None:
        """Rebuild everything as one segment (and refit the n-gram idf on all
        names). Entity order, and so vector rows, is unchanged."""
        self._store.compact()

    def set_vectors(self, entity_ids: Sequence[str], vectors: np.ndarray) -> None:
        """Set entity vectors.

        entity_ids (Sequence[str]): Entities.
        vectors (np.ndarray): (len(entity_ids), entity_vector_length).
        """
        self._store.set_vectors(entity_ids, vectors, vector_length=self.entity_vector_length)

    # -- entities -----------------------------------------------------------

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, entity_id: object) -> bool:
        return entity_id in self._store

    def is_empty(self) -> bool:
        return len(self) == 0

    def entity(self, entity_id: str) -> EntityRecord:
        """The stored record of an entity.

        entity_id (str): The id.
        RETURNS (EntityRecord): Name, aliases, description, type, prior,
            alternative ids.
        RAISES (KeyError): Unknown id.
        """
        found = self._store.locate(entity_id)
        if found is None:
            raise KeyError(entity_id)
        return self._segments[found[0]].record(found[1])

    @property
    def entity_ids(self) -> "EntityIds":
        """All entity ids, in insertion order (a lazy sequence)."""
        return EntityIds(self._segments)

    def resolve_id(self, any_id: str) -> List[str]:
        """Entities whose primary or alternative id is `any_id`.

        any_id (str): An id (prefix already stripped as in the KB).
        RETURNS (List[str]): Primary ids, the exact match first.
        """
        out = [any_id] if any_id in self else []
        for seg in self._segments:
            out.extend(seg.entity_id(int(r)) for r in seg.rows_with_alt_id(any_id))
        return list(dict.fromkeys(out))

    # -- candidates ----------------------------------------------------------

    def candidates(
        self,
        mention: str,
        *,
        abbreviations: Optional[Dict[str, str]] = None,
        top_k: Optional[int] = None,
        stages: Optional[Sequence[str]] = None,
    ) -> List[ScoredCandidate]:
        """Candidate entities for a mention, best first, each entity once.

        mention (str): The mention text.
        abbreviations (Optional[Dict[str, str]]): The document's short form ->
            long form map (`find_abbreviations(doc.text)`).
        top_k (Optional[int]): How many; default the KB's `top_k`.
        stages (Optional[Sequence[str]]): Restrict the cascade's stages.
        RETURNS (List[ScoredCandidate]): The candidates.
        """
        return self.candidates_batch([mention], abbreviations=abbreviations, top_k=top_k, stages=stages)[0]

    def candidates_batch(
        self,
        mentions: Sequence[str],
        *,
        abbreviations: AbbreviationMaps = None,
        top_k: Optional[int] = None,
        stages: Optional[Sequence[str]] = None,
    ) -> List[List[ScoredCandidate]]:
        """`candidates` for many mentions; the n-gram stage runs as one sparse
        product per batch.

        mentions (Sequence[str]): Mention texts.
        abbreviations (AbbreviationMaps): One map for all mentions, or one
            per mention (None entries allowed).
        top_k (Optional[int]): How many per mention.
        stages (Optional[Sequence[str]]): Restrict the cascade's stages.
        RETURNS (List[List[ScoredCandidate]]): Per mention.
        """
        return generate(
            self._store.segments, self._store.idf, list(mentions), abbreviations=abbreviations, config=self.config,
            top_k=top_k, stages=stages,
        )

    def doc_abbreviations(self, doc: Doc) -> Dict[str, str]:
        """The abbreviations defined in a doc (cached for the last docs seen).

        doc (Doc): The document.
        RETURNS (Dict[str, str]): Short form -> long form.
        """
        return self._doc_abbreviations(doc)

    def candidates_for_spans(
        self, spans: Sequence[Span], *, top_k: Optional[int] = None, stages: Optional[Sequence[str]] = None
    ) -> List[List[ScoredCandidate]]:
        """`candidates_batch` for spans, with the abbreviations defined in
        each span's doc when `use_doc_abbreviations` is on.

        spans (Sequence[Span]): The mentions.
        top_k (Optional[int]): How many per mention.
        stages (Optional[Sequence[str]]): Restrict the cascade's stages.
        RETURNS (List[List[ScoredCandidate]]): Per span.
        """
        maps = self._doc_abbreviations.for_spans(spans) if self.use_doc_abbreviations else None
        return self.candidates_batch([s.text for s in spans], abbreviations=maps, top_k=top_k, stages=stages)

    def get_candidates(self, mention: Span) -> List[Candidate]:
        """spaCy API: candidates for a span as `spacy.kb.Candidate`s.

        mention (Span): The entity mention.
        RETURNS (List[Candidate]): entity_ = KB id, alias_ = matched KB name,
            prior_prob = P(entity | alias), entity_freq = entity prior (0 if
            unknown).
        """
        return self.get_candidates_batch([mention])[0]

    def get_candidates_batch(self, mentions: Iterable[Span]) -> List[List[Candidate]]:
        """spaCy API: `get_candidates` for many spans, in one cascade batch.

        mentions (Iterable[Span]): The spans.
        RETURNS (List[List[Candidate]]): Per span.
        """
        return [[self._to_spacy(c) for c in cands] for cands in self.candidates_for_spans(list(mentions))]

    def _to_spacy(self, cand: ScoredCandidate) -> Candidate:
        seg_i, row = self._store.locate(cand.entity_id)  # type: ignore[misc]
        prior = float(self._segments[seg_i].prior[row])
        return Candidate(
            kb=self,
            entity_hash=self.vocab.strings.add(cand.entity_id),
            entity_freq=0.0 if np.isnan(prior) else prior,
            entity_vector=self.get_vector(cand.entity_id),
            alias_hash=self.vocab.strings.add(cand.alias),
            prior_prob=cand.prior,
        )

    def get_alias_candidates(self, alias: str) -> List[Candidate]:
        """Stock-compatible exact alias look-up (like InMemoryLookupKB's).

        alias (str): The alias.
        RETURNS (List[Candidate]): Entities with exactly this name.
        """
        return [self._to_spacy(c) for c in self.candidates(alias, stages=("exact",), top_k=1 << 30)]

    def get_vector(self, entity: str) -> List[float]:
        """spaCy API: the entity's vector ([] when entity_vector_length is 0).

        entity (str): The entity id.
        RETURNS (List[float]): The vector.
        """
        return self._store.vectors[self._store.global_row(entity)].tolist()

    def get_prior_prob(self, entity: str, alias: str) -> float:
        """P(entity | alias) for an exact alias (0.0 if not a name of it).

        entity (str): Entity id.
        alias (str): Alias.
        RETURNS (float): The prior.
        """
        for cand in self.candidates(alias, stages=("exact",), top_k=1 << 30):
            if cand.entity_id == entity:
                return cand.prior
        return 0.0

    def get_size_entities(self) -> int:
        return len(self)

    def get_size_aliases(self) -> int:
        """Distinct surface aliases (counted per segment)."""
        return sum(s.n_aliases for s in self._segments)

    def get_entity_strings(self) -> List[str]:
        return list(self.entity_ids)

    def get_alias_strings(self) -> List[str]:
        return list(dict.fromkeys(a for s in self._segments for a in s.aliases.keys()))

    def contains_entity(self, entity: str) -> bool:
        return entity in self

    def contains_alias(self, alias: str) -> bool:
        return any(s.aliases.get(alias) is not None for s in self._segments)

    # -- serialisation -------------------------------------------------------

    def _cfg(self) -> Dict[str, Any]:
        return kb_settings(
            config=self.config, entity_vector_length=self.entity_vector_length,
            use_doc_abbreviations=self.use_doc_abbreviations, n_segments=len(self._segments),
        )

    def _set_cfg(self, cfg: Dict[str, Any]) -> None:
        self._vector_length = int(cfg["entity_vector_length"])
        known = set(CascadeConfig.__dataclass_fields__)
        self.config = CascadeConfig(**{k: v for k, v in cfg["cascade"].items() if k in known})
        self.use_doc_abbreviations = bool(cfg["use_doc_abbreviations"])

    def to_bytes(self, **kwargs: Any) -> bytes:
        """spaCy API: serialise everything.

        RETURNS (bytes): The KB.
        """
        return store_to_bytes(self._cfg(), self._store)

    def from_bytes(self, bytes_data: bytes, *, exclude: Tuple[str, ...] = tuple()) -> "LinkerKB":
        """spaCy API: restore from `to_bytes` output.

        bytes_data (bytes): The data.
        exclude (Tuple[str]): Unused (kept for the API).
        RETURNS (LinkerKB): self.
        """
        cfg, store = store_from_bytes(bytes_data)
        self._set_cfg(cfg)
        self._store = store
        return self

    def to_disk(self, path: Union[str, Path], exclude: Iterable[str] = SimpleFrozenList()) -> None:
        """spaCy API: write a folder (meta.json, the idf and vectors as .npy,
        and one folder per segment with .npy arrays and .marisa tries).

        path (Union[str, Path]): The folder.
        exclude (Iterable[str]): Unused (kept for the API).
        """
        save_folder(ensure_path(path), self._cfg(), self._store)

    def from_disk(self, path: Union[str, Path], exclude: Iterable[str] = SimpleFrozenList()) -> "LinkerKB":
        """spaCy API: load a folder written by `to_disk` (memory-mapped when
        the KB was created with mmap=True).

        path (Union[str, Path]): The folder.
        exclude (Iterable[str]): Unused (kept for the API).
        RETURNS (LinkerKB): self.
        """
        path = check_folder(path)
        with loading(path):
            cfg, store = load_folder(path, mmap=self.mmap)
            self._set_cfg(cfg)
            self._store = store
        return self

    @classmethod
    def load(cls, path: Union[str, Path], vocab: Vocab, *, mmap: bool = True) -> "LinkerKB":
        """Load a saved KB, taking entity_vector_length from the folder.

        path (Union[str, Path]): The folder.
        vocab (Vocab): The vocab.
        mmap (bool): Memory-map the arrays and tries.
        RETURNS (LinkerKB): The KB.
        RAISES (KBFormatError): If the folder is missing, incomplete or
            corrupt (the message names it).
        """
        path = check_folder(path)
        with loading(path):
            cfg = read_settings(path)
            kb = cls(vocab, int(cfg["entity_vector_length"]), mmap=mmap)
        return kb.from_disk(path)

    def __reduce__(self) -> Tuple[Any, ...]:
        # The Cython base class cannot be pickled field by field; nlp.pipe
        # with n_process > 1 pickles the pipeline, so go through bytes.
        return (_unpickle, (self.vocab, self.entity_vector_length, self.mmap, self.to_bytes()))


def _unpickle(vocab: Vocab, entity_vector_length: int, mmap: bool, data: bytes) -> LinkerKB:
    return LinkerKB(vocab, entity_vector_length, mmap=mmap).from_bytes(data)
