"""Write a saved LinkerKB folder straight from records, without spaCy.

`build-kb` needs no `Vocab` and no `KnowledgeBase`: the folder is the
entity store (segments, idf, vectors) and the settings `LinkerKB` would
save. Importing spaCy costs about two seconds (thinc imports torch), more
than building a small KB, so the command builds the store and writes it
here; the folder is byte for byte the one
`LinkerKB.from_records(Vocab(), records).to_disk(path)` writes (both take
their settings from `persistence.kb_settings`).
"""
import pickle
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import fields
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import Deque, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .candidates import STAGES, CascadeConfig
from .persistence import kb_settings, load_segment, save_folder, save_head, save_segment
from .ngrams import Idf
from .records import EntityRecord, KBFormatError
from .segment import Segment
from .segment_build import fit_idf
from .string_index import hash_strings
from .store import EntityStore

__all__ = ["write_kb"]

_FIELDS = [f.name for f in fields(EntityRecord)]


def write_kb(
    records: Iterable[EntityRecord],
    path: Union[str, Path],
    *,
    entity_vector_length: int = 0,
    top_k: int = 10,
    stages: Sequence[str] = STAGES,
    min_ngram_score: float = 0.0,
    use_doc_abbreviations: bool = True,
    ngram_retrieval: str = "words+grams",
    segment_size: int = 0,
    workers: int = 1,
) -> EntityStore:
    """Build a KB from records and save it as a LinkerKB folder, loadable
    with `LinkerKB.load` or `spacy_llm_ner.load_kb.v1`.

    records (Iterable[EntityRecord]): The entities (streamed once).
    path (Union[str, Path]): The folder (created).
    entity_vector_length (int): Length of the entity vectors (zeros).
    top_k, stages, min_ngram_score, use_doc_abbreviations: The cascade
        settings saved with the KB, as for `LinkerKB`.
    ngram_retrieval (str): The n-gram stage's retrieval (`CascadeConfig`):
        "words+grams", "words" (fastest on KBs of millions of names) or "grams".
    segment_size (int): Stream the records into segments of this many
        entities, each written and then memory-mapped before the next is
        built, so that peak memory is one segment's build, not the KB's
        (0: one segment). The n-gram idf is fitted on the first segment.
    workers (int): Segments built at once, each in a worker process (with
        `segment_size`; peak memory grows with it). The folder is the same
        for any number.
    RETURNS (EntityStore): The entities written (its len: how many).
    RAISES (KBFormatError): On an invalid record or a repeated id.
    """
    # The same validation and order of building as LinkerKB.__init__ and
    # add_entities, so that the files are the same.
    config = CascadeConfig(
        top_k=top_k, stages=tuple(stages), min_ngram_score=min_ngram_score, ngram_retrieval=ngram_retrieval
    )
    if segment_size > 0:
        store = _write_segments(
            records, Path(path), segment_size=segment_size, vector_length=entity_vector_length, workers=workers
        )
    else:
        store = EntityStore.empty(entity_vector_length)
        store.add(records, vectors=None, vector_length=entity_vector_length)
    cfg = kb_settings(
        config=config, entity_vector_length=int(entity_vector_length),
        use_doc_abbreviations=use_doc_abbreviations, n_segments=len(store.segments),
    )
    if segment_size > 0:
        save_head(Path(path), cfg, store)  # the segments are written already
    else:
        save_folder(Path(path), cfg, store)
    return store


def _write_segments(
    records: Iterable[EntityRecord], path: Path, *, segment_size: int, vector_length: int, workers: int
) -> EntityStore:
    """Build and save the segments, `workers` at a time in worker processes
    (one: in this process); the store returned holds them memory-mapped
    (vectors are zeros, `np.zeros` pages are not touched). Every segment is
    built with the n-gram idf of the first chunk, so the files do not depend
    on `workers`."""
    ids = _SeenIds()
    segments: List[Segment] = []
    idf: Optional[Idf] = None

    def saved(i: int) -> None:
        segments.append(load_segment(path, i, idf, mmap=True))  # type: ignore[arg-type]
        ids.add(segments[-1], i)

    if workers <= 1:
        for i, chunk in enumerate(_chunks(records, segment_size)):
            fitted = _build_segment(path, i, chunk, idf)
            idf = idf or fitted
            saved(i)
    else:
        # At most `workers` chunks in flight, each held here as one pickled
        # bytes object (a tenth of the records' objects) until its worker has
        # built and written the segment, so memory stays bounded.
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            running: Deque[Tuple[int, Future]] = deque()
            for i, chunk in enumerate(_chunks(records, segment_size)):
                payload = pickle.dumps([tuple(getattr(rec, f) for f in _FIELDS) for rec in chunk], protocol=5)
                running.append((i, pool.submit(_build_packed_segment, path, i, payload, idf)))
                del payload
                if idf is None:
                    # The idf the first segment's worker fits, fitted here meanwhile for the others.
                    idf = fit_idf(chunk)
                del chunk
                while len(running) >= workers:
                    done, future = running.popleft()
                    future.result()
                    saved(done)
            for done, future in running:
                future.result()
                saved(done)
    if not segments:
        return EntityStore.empty(vector_length)
    n = sum(len(seg) for seg in segments)
    return EntityStore(segments=segments, idf=idf, vectors=np.zeros((n, vector_length), dtype=np.float32))


def _build_segment(path: Path, i: int, records: List[EntityRecord], idf: Optional[Idf]) -> Idf:
    """Build segment i (with `idf`, or fitting its own) and write it.

    RETURNS (Idf): The idf it was built with.
    """
    built = Segment.build(records, idf=idf)
    save_segment(path, i, built)
    return built.ngrams.idf


def _build_packed_segment(path: Path, i: int, payload: bytes, idf: Optional[Idf]) -> None:
    """`_build_segment` in a worker, from the records' field values pickled."""
    _build_segment(path, i, [EntityRecord(*values) for values in pickle.loads(payload)], idf)


class _SeenIds:
    """The entity ids of the segments written so far, by hash, to refuse
    an id that an earlier segment holds (each segment checks its own)."""

    def __init__(self) -> None:
        self._hashes = np.zeros(0, dtype=np.uint64)
        self._segments: List[Segment] = []

    def add(self, seg: Segment, i: int) -> None:
        """Check a new segment's ids against the earlier ones, then keep them.

        RAISES (KBFormatError): On an id an earlier segment holds.
        """
        own = [seg.entity_id(r) for r in range(len(seg))]
        hashes, _ = hash_strings(own)
        at = np.minimum(np.searchsorted(self._hashes, hashes), max(0, len(self._hashes) - 1))
        for r in np.flatnonzero(self._hashes[at] == hashes) if len(self._hashes) else []:
            # A hash seen before: compare the strings (hashes of different ids may collide).
            if any(prev.row(own[r]) is not None for prev in self._segments):
                raise KBFormatError(f"duplicate entity id {own[r]!r} (in segment {i} and an earlier one)", field="id")
        self._hashes = np.sort(np.concatenate([self._hashes, hashes]))
        self._segments.append(seg)


def _chunks(records: Iterable[EntityRecord], size: int) -> Iterator[List[EntityRecord]]:
    it = iter(records)
    while True:
        chunk = list(islice(it, size))
        if not chunk:
            return
        yield chunk
