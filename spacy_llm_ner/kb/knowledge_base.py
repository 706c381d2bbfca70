"""`LinkerKB`: a scalable spaCy `KnowledgeBase` with a recall-oriented
candidate cascade.

Stock spaCy code sees a `KnowledgeBase`: `get_candidates(span)` returns
`spacy.kb.Candidate` objects (entity hash, alias hash, P(entity | alias)),
and `to_disk` / `from_disk` / `to_bytes` / `from_bytes` work inside a saved
pipeline. The entity linker built on top uses the richer API:
`candidates()` / `candidates_batch()` (scored, with the stage that found
each entity), `entity()`, `resolve_id()`, `add_entities()`.

Why these structures (measured with ``benchmarks/kb_scale.py``: 1,000,000
synthetic entities, 3,000,000 (entity, name) pairs, 2 CPUs; full table in
``benchmarks/results/kb_scale.md``): spaCy's `InMemoryLookupKB` keeps every
alias and entity id in the shared `StringStore` and a C struct per alias and
reads everything back on load (5.5 s, +1.2 GB resident). Here the strings
live in marisa tries (7.9 bytes a name), the alias -> entity lists and
priors in numpy CSR arrays, names and descriptions as packed UTF-8, all
saved as .npy / .marisa files that `from_disk` memory-maps: load 0.005 s,
+4 MB resident, 1.4 GB peak while serving 22,600 exact + normalised or 205
full-cascade look-ups/s (InMemoryLookupKB: 254,000 exact-only look-ups/s,
and no hit at all for a changed case or a typo). Building costs more (52 s
and 3.2 GB peak against 19 s and 2.3 GB), mostly the n-gram index, which is
also 435 of the 688 MB on disk.
The n-gram index is described in `ngrams.py`.

Storage is a list of immutable segments (see `segment.py`): `add_entities`
indexes only the new records; small segments are merged automatically and
`compact()` rebuilds a single one.
"""
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import srsly
from spacy.kb import Candidate, KnowledgeBase
from spacy.tokens import Doc, Span
from spacy.util import SimpleFrozenList, ensure_path
from spacy.vocab import Vocab

from .abbreviations import find_abbreviations
from .candidates import STAGES, AbbreviationMaps, CascadeConfig, ScoredCandidate, generate
from .records import EntityRecord, KBFormatError
from .ngrams import Idf
from .segment import Segment
from .storage import decode_array, decode_bundle, encode_array, encode_bundle, load_bundle, save_bundle

FORMAT_VERSION = 1
# Segments added after the first that are tolerated before they are merged.
MAX_EXTRA_SEGMENTS = 4


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
        self._segments: List[Segment] = []
        self._idf: Optional[Idf] = None
        self._vectors = np.zeros((0, entity_vector_length), dtype=np.float32)
        self._abbreviation_cache: "OrderedDict[int, Tuple[str, Dict[str, str]]]" = OrderedDict()

    @property  # type: ignore[override]
    def entity_vector_length(self) -> int:
        """Length of the entity vectors. Shadows the base class's read-only C
        field so that loading a saved KB can adopt the saved length, as
        spaCy's InMemoryLookupKB does."""
        return self._vector_length

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
        segment = Segment.build(records, idf=self._idf, taken=self.__contains__)
        if len(segment) == 0:
            return 0
        if vectors is None:
            vectors = np.zeros((len(segment), self.entity_vector_length), dtype=np.float32)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(segment), self.entity_vector_length):
            raise ValueError(f"vectors must have shape {(len(segment), self.entity_vector_length)}, got {vectors.shape}")
        if self._idf is None:
            self._idf = segment.ngrams.idf
        self._segments.append(segment)
        self._vectors = np.concatenate([self._vectors, vectors]) if len(self._vectors) else vectors
        if len(self._segments) > 1 + MAX_EXTRA_SEGMENTS:
            self._merge_extra_segments()
        return len(segment)

    def _merge_extra_segments(self) -> None:
        base, extra = self._segments[0], self._segments[1:]
        if sum(len(s) for s in extra) > len(base):
            self.compact()
            return
        merged = Segment.build((r for s in extra for r in s.records()), idf=self._idf)
        self._segments = [base, merged]

    def compact(self) -> None:
        """Rebuild everything as one segment (and refit the n-gram idf on all
        names). Entity order, and so vector rows, is unchanged."""
        if len(self._segments) <= 1:
            return
        records = [r for s in self._segments for r in s.records()]
        segment = Segment.build(records)
        self._segments = [segment]
        self._idf = segment.ngrams.idf

    def set_vectors(self, entity_ids: Sequence[str], vectors: np.ndarray) -> None:
        """Set entity vectors.

        entity_ids (Sequence[str]): Entities.
        vectors (np.ndarray): (len(entity_ids), entity_vector_length).
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(entity_ids), self.entity_vector_length):
            raise ValueError(f"vectors must have shape {(len(entity_ids), self.entity_vector_length)}, got {vectors.shape}")
        rows = [self._global_row(e) for e in entity_ids]
        if not self._vectors.flags.writeable:
            self._vectors = np.array(self._vectors)
        self._vectors[rows] = vectors

    # -- entities -----------------------------------------------------------

    def _locate(self, entity_id: str) -> Optional[Tuple[int, int]]:
        for i, seg in enumerate(self._segments):
            row = seg.row(entity_id)
            if row is not None:
                return i, row
        return None

    def _global_row(self, entity_id: str) -> int:
        found = self._locate(entity_id)
        if found is None:
            raise KeyError(entity_id)
        i, row = found
        return sum(len(s) for s in self._segments[:i]) + row

    def __len__(self) -> int:
        return sum(len(s) for s in self._segments)

    def __contains__(self, entity_id: object) -> bool:
        return isinstance(entity_id, str) and self._locate(entity_id) is not None

    def is_empty(self) -> bool:
        return len(self) == 0

    def entity(self, entity_id: str) -> EntityRecord:
        """The stored record of an entity.

        entity_id (str): The id.
        RETURNS (EntityRecord): Name, aliases, description, type, prior,
            alternative ids.
        RAISES (KeyError): Unknown id.
        """
        found = self._locate(entity_id)
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
            self._segments, self._idf, list(mentions), abbreviations=abbreviations, config=self.config,
            top_k=top_k, stages=stages,
        )

    def doc_abbreviations(self, doc: Doc) -> Dict[str, str]:
        """The abbreviations defined in a doc (cached for the last docs seen).

        doc (Doc): The document.
        RETURNS (Dict[str, str]): Short form -> long form.
        """
        key = id(doc)
        hit = self._abbreviation_cache.get(key)
        if hit is not None and hit[0] == doc.text:
            self._abbreviation_cache.move_to_end(key)
            return hit[1]
        found = find_abbreviations(doc.text)
        self._abbreviation_cache[key] = (doc.text, found)
        while len(self._abbreviation_cache) > 64:
            self._abbreviation_cache.popitem(last=False)
        return found

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
        spans = list(mentions)
        # One look-up per doc: the cache check reads doc.text (a pass over the
        # doc), which per mention would be quadratic in a long document.
        per_doc: Dict[int, Dict[str, str]] = {}
        if self.use_doc_abbreviations:
            for s in spans:
                if id(s.doc) not in per_doc:
                    per_doc[id(s.doc)] = self.doc_abbreviations(s.doc)
        maps = [per_doc.get(id(s.doc)) for s in spans]
        scored = self.candidates_batch([s.text for s in spans], abbreviations=maps)
        return [[self._to_spacy(c) for c in cands] for cands in scored]

    def _to_spacy(self, cand: ScoredCandidate) -> Candidate:
        seg_i, row = self._locate(cand.entity_id)  # type: ignore[misc]
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
        return self._vectors[self._global_row(entity)].tolist()

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
        return {
            "format": FORMAT_VERSION,
            "entity_vector_length": self.entity_vector_length,
            "cascade": asdict(self.config),
            "use_doc_abbreviations": self.use_doc_abbreviations,
            "n_segments": len(self._segments),
        }

    def _set_cfg(self, cfg: Dict[str, Any]) -> None:
        if cfg.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported LinkerKB format {cfg.get('format')!r} (expected {FORMAT_VERSION})")
        self._vector_length = int(cfg["entity_vector_length"])
        known = set(CascadeConfig.__dataclass_fields__)
        self.config = CascadeConfig(**{k: v for k, v in cfg["cascade"].items() if k in known})
        self.use_doc_abbreviations = bool(cfg["use_doc_abbreviations"])

    def to_bytes(self, **kwargs: Any) -> bytes:
        """spaCy API: serialise everything.

        RETURNS (bytes): The KB.
        """
        msg = {
            "cfg": self._cfg(),
            "idf": None if self._idf is None else {k: encode_array(v) for k, v in self._idf.arrays().items()},
            "vectors": encode_array(self._vectors),
            "segments": [encode_bundle(s.arrays, s.tries, s.meta) for s in self._segments],
        }
        return srsly.msgpack_dumps(msg)

    def from_bytes(self, bytes_data: bytes, *, exclude: Tuple[str, ...] = tuple()) -> "LinkerKB":
        """spaCy API: restore from `to_bytes` output.

        bytes_data (bytes): The data.
        exclude (Tuple[str]): Unused (kept for the API).
        RETURNS (LinkerKB): self.
        """
        msg = srsly.msgpack_loads(bytes_data)
        self._set_cfg(msg["cfg"])
        self._idf = None if msg["idf"] is None else Idf.from_arrays({k: decode_array(v) for k, v in msg["idf"].items()})
        self._vectors = decode_array(msg["vectors"])
        self._segments = [Segment(*decode_bundle(b), idf=self._idf) for b in msg["segments"]]  # type: ignore[arg-type]
        return self

    def to_disk(self, path: Union[str, Path], exclude: Iterable[str] = SimpleFrozenList()) -> None:
        """spaCy API: write a folder (meta.json, the idf and vectors as .npy,
        and one folder per segment with .npy arrays and .marisa tries).

        path (Union[str, Path]): The folder.
        exclude (Iterable[str]): Unused (kept for the API).
        """
        path = ensure_path(path)
        arrays = {"vectors": self._vectors}
        if self._idf is not None:
            arrays.update(self._idf.arrays())
        save_bundle(path, arrays, {}, self._cfg())
        for i, seg in enumerate(self._segments):
            save_bundle(path / "segments" / str(i), seg.arrays, seg.tries, seg.meta)

    def from_disk(self, path: Union[str, Path], exclude: Iterable[str] = SimpleFrozenList()) -> "LinkerKB":
        """spaCy API: load a folder written by `to_disk` (memory-mapped when
        the KB was created with mmap=True).

        path (Union[str, Path]): The folder.
        exclude (Iterable[str]): Unused (kept for the API).
        RETURNS (LinkerKB): self.
        """
        path = _check_folder(path)
        with _loading(path):
            arrays, _, cfg = load_bundle(path, mmap=self.mmap)
            self._set_cfg(cfg)
            self._idf = Idf.from_arrays(arrays) if "idf_buckets" in arrays else None
            self._vectors = arrays["vectors"]
            self._segments = [
                Segment(*load_bundle(path / "segments" / str(i), mmap=self.mmap), idf=self._idf)  # type: ignore[arg-type]
                for i in range(int(cfg["n_segments"]))
            ]
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
        path = _check_folder(path)
        with _loading(path):
            cfg = srsly.read_json(path / "meta.json")
            if not isinstance(cfg, dict) or cfg.get("format") != FORMAT_VERSION:
                raise ValueError(f"unsupported LinkerKB format {cfg.get('format') if isinstance(cfg, dict) else cfg!r}")
            kb = cls(vocab, int(cfg["entity_vector_length"]), mmap=mmap)
        return kb.from_disk(path)

    def __reduce__(self) -> Tuple[Any, ...]:
        # The Cython base class cannot be pickled field by field; nlp.pipe
        # with n_process > 1 pickles the pipeline, so go through bytes.
        return (_unpickle, (self.vocab, self.entity_vector_length, self.mmap, self.to_bytes()))


def _check_folder(path: Union[str, Path]) -> Path:
    path = ensure_path(path)
    if not path.is_dir() or not (path / "meta.json").is_file():
        raise KBFormatError(
            "no LinkerKB folder here (expected a folder with meta.json, written by LinkerKB.to_disk or "
            "`python -m spacy_llm_ner build-kb`)",
            path=str(path),
        )
    return path


@contextmanager
def _loading(path: Path) -> Iterator[None]:
    """Report any failure to read a saved KB as one error naming the folder:
    a missing .npy, a truncated trie or broken JSON otherwise surface as a
    KeyError or a marisa RuntimeError from deep inside the loader."""
    try:
        yield
    except KBFormatError:
        raise
    except Exception as e:
        raise KBFormatError(
            f"corrupt or incomplete LinkerKB folder ({type(e).__name__}: {e}); rebuild it with "
            "LinkerKB.to_disk or `python -m spacy_llm_ner build-kb`",
            path=str(path),
        ) from e


def _unpickle(vocab: Vocab, entity_vector_length: int, mmap: bool, data: bytes) -> LinkerKB:
    return LinkerKB(vocab, entity_vector_length, mmap=mmap).from_bytes(data)


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
