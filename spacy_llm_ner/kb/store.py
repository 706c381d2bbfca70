"""The entities a `LinkerKB` holds: its segments, the n-gram idf they share,
and the entity vectors, with how they grow (add, merge, compact) and how an
entity id is found in them.

Rows: an entity's global row (its vector's row) is its segment's offset plus
its row in the segment, so merging or compacting segments, which keeps the
entity order, never moves a vector.
"""
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .ngrams import Idf
from .records import EntityRecord
from .segment import Segment

# Segments added after the first that are tolerated before they are merged.
MAX_EXTRA_SEGMENTS = 4
# Leading segments at least this large (a streamed build writes them, see
# writer.py) are sealed: merging after `add` never rebuilds them, which at
# millions of entities would hold the whole KB in memory.
SEALED_SIZE = 250_000


@dataclass
class EntityStore:
    """Segments, idf and vectors of one KB.

    segments (List[Segment]): The segments, in insertion order.
    idf (Optional[Idf]): The n-gram idf (None until the first entities).
    vectors (np.ndarray): (n_entities, entity_vector_length) float32.
    """

    segments: List[Segment]
    idf: Optional[Idf]
    vectors: np.ndarray

    @classmethod
    def empty(cls, vector_length: int) -> "EntityStore":
        """A store without entities.

        vector_length (int): Length of the entity vectors.
        RETURNS (EntityStore): The store.
        """
        return cls(segments=[], idf=None, vectors=np.zeros((0, vector_length), dtype=np.float32))

    def __len__(self) -> int:
        return sum(len(s) for s in self.segments)

    def __contains__(self, entity_id: object) -> bool:
        return isinstance(entity_id, str) and self.locate(entity_id) is not None

    def locate(self, entity_id: str) -> Optional[Tuple[int, int]]:
        """Where an entity is.

        entity_id (str): The id.
        RETURNS (Optional[Tuple[int, int]]): (segment index, local row) or None.
        """
        for i, seg in enumerate(self.segments):
            row = seg.row(entity_id)
            if row is not None:
                return i, row
        return None

    def global_row(self, entity_id: str) -> int:
        """The entity's row among all entities (its vector's row).

        entity_id (str): The id.
        RETURNS (int): The row.
        RAISES (KeyError): Unknown id.
        """
        found = self.locate(entity_id)
        if found is None:
            raise KeyError(entity_id)
        i, row = found
        return sum(len(s) for s in self.segments[:i]) + row

    def add(self, records: Iterable[EntityRecord], *, vectors: Optional[np.ndarray], vector_length: int) -> int:
        """Index new entities as a new segment (see `LinkerKB.add_entities`).

        records (Iterable[EntityRecord]): New entities (ids must be new).
        vectors (Optional[np.ndarray]): Their vectors; default zeros.
        vector_length (int): The KB's entity vector length.
        RETURNS (int): The number of entities added.
        RAISES (KBFormatError): On an invalid record or an id already present.
        """
        segment = Segment.build(records, idf=self.idf, taken=self.__contains__)
        if len(segment) == 0:
            return 0
        if vectors is None:
            vectors = np.zeros((len(segment), vector_length), dtype=np.float32)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(segment), vector_length):
            raise ValueError(f"vectors must have shape {(len(segment), vector_length)}, got {vectors.shape}")
        if self.idf is None:
            self.idf = segment.ngrams.idf
        self.segments.append(segment)
        self.vectors = np.concatenate([self.vectors, vectors]) if len(self.vectors) else vectors
        if len(self.segments) > self._n_sealed() + MAX_EXTRA_SEGMENTS:
            self._merge_extra_segments()
        return len(segment)

    def _n_sealed(self) -> int:
        """How many leading segments merging leaves alone (at least the first)."""
        if len(self.segments[0]) < SEALED_SIZE:
            return 1
        n = 1
        while n < len(self.segments) and len(self.segments[n]) >= SEALED_SIZE:
            n += 1
        return n

    def _merge_extra_segments(self) -> None:
        n_sealed = self._n_sealed()
        sealed, extra = self.segments[:n_sealed], self.segments[n_sealed:]
        if n_sealed == 1 and sum(len(s) for s in extra) > len(sealed[0]):
            self.compact()
            return
        merged = Segment.build((r for s in extra for r in s.records()), idf=self.idf)
        self.segments = [*sealed, merged]

    def compact(self) -> None:
        """Rebuild everything as one segment (and refit the n-gram idf on all
        names). Entity order, and so vector rows, is unchanged."""
        if len(self.segments) <= 1:
            return
        records = [r for s in self.segments for r in s.records()]
        segment = Segment.build(records)
        self.segments = [segment]
        self.idf = segment.ngrams.idf

    def set_vectors(self, entity_ids: Sequence[str], vectors: np.ndarray, *, vector_length: int) -> None:
        """Set entity vectors (see `LinkerKB.set_vectors`).

        entity_ids (Sequence[str]): Entities.
        vectors (np.ndarray): (len(entity_ids), vector_length).
        vector_length (int): The KB's entity vector length.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(entity_ids), vector_length):
            raise ValueError(f"vectors must have shape {(len(entity_ids), vector_length)}, got {vectors.shape}")
        rows = [self.global_row(e) for e in entity_ids]
        # Memory-mapped vectors are read-only: the first change copies them.
        if not self.vectors.flags.writeable:
            self.vectors = np.array(self.vectors)
        self.vectors[rows] = vectors
