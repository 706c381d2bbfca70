"""The entity side of the linker: KB entities encoded by the pipeline's
backbone from their text (`name: description`), with an LRU cache for
prediction and, optionally, precomputed vectors for every KB entity that are
saved with the pipeline.

An entity is represented by its text, not by a learned embedding per id, so
entities added to the KB after training are encoded like any other.
"""
import os
import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional

import numpy
import srsly
from spacy.tokens import Doc
from thinc.api import Model

from ..kb.knowledge_base import LinkerKB


class Backbone(NamedTuple):
    """What encodes entity texts.

    make_doc (Callable[[str], Doc]): The pipeline's tokenizer.
    upstream (Optional[Any]): The component the tok2vec listens to (its
        predict and set_annotations run first), or None for an inline tok2vec.
    tok2vec (Model): The linker's tok2vec (listener or inline).
    max_tokens (int): Texts are cut to this many tokens.
    batch_size (int): Texts encoded per backbone call.
    """

    make_doc: Callable[[str], Doc]
    upstream: Optional[Any]
    tok2vec: Model
    max_tokens: int
    batch_size: int


def entity_text(kb: LinkerKB, entity_id: str) -> str:
    """The text an entity is encoded from.

    kb (LinkerKB): The knowledge base.
    entity_id (str): The entity.
    RETURNS (str): "name: description", or the name alone.
    """
    record = kb.entity(entity_id)
    return f"{record.name}: {record.description}" if record.description else record.name


def encode_texts(texts: List[str], backbone: Backbone) -> numpy.ndarray:
    """Mean token vector of each text, the backbone in predict mode.

    texts (List[str]): The texts.
    backbone (Backbone): The backbone.
    RETURNS (numpy.ndarray): (len(texts), width) float32.
    """
    out: List[numpy.ndarray] = []
    ops = backbone.tok2vec.ops
    for i in range(0, len(texts), backbone.batch_size):
        docs = []
        for text in texts[i : i + backbone.batch_size]:
            doc = backbone.make_doc(text)
            docs.append(doc[: backbone.max_tokens].as_doc() if len(doc) > backbone.max_tokens else doc)
        if backbone.upstream is not None:
            backbone.upstream.set_annotations(docs, backbone.upstream.predict(docs))
        for vectors in backbone.tok2vec.predict(docs):
            vectors = ops.to_numpy(vectors)
            out.append(vectors.mean(axis=0) if len(vectors) else numpy.zeros(vectors.shape[1], dtype="f"))
    return numpy.asarray(out, dtype="f")


class EntityEncoder:
    """Backbone encodings of KB entities, cached.

    The cache holds the most recently used encodings at prediction time. After
    `precompute`, every KB entity's encoding is in a table (one row per
    entity) that is part of the pipeline (saved, loaded, pickled) until the
    backbone changes and `clear` is called. A loaded table is memory-mapped
    (numpy.load mmap_mode="r"): processes that load the same pipeline on one
    host share its pages, and only the rows used are read. The table may be
    float16 (`set_dtype`), half the size on disk and in memory; encodings are
    handed out as float32 either way.
    """

    def __init__(self) -> None:
        self._cache: "OrderedDict[str, numpy.ndarray]" = OrderedDict()
        self._index: Dict[str, int] = {}
        self._table: Optional[numpy.ndarray] = None
        self.precomputed = False

    @property
    def cached_ids(self) -> List[str]:
        """The entities whose encodings are kept: the precomputed ones, then
        the cached ones, least recently used first."""
        return list(self._index) + [e for e in self._cache if e not in self._index]

    @property
    def dtype(self) -> str:
        """The precomputed table's dtype ("float32" or "float16")."""
        return "float32" if self._table is None else str(self._table.dtype)

    def vector(self, entity_id: str) -> numpy.ndarray:
        """The kept encoding of an entity.

        entity_id (str): The entity.
        RETURNS (numpy.ndarray): Its encoding (float32).
        RAISES (KeyError): If it is neither precomputed nor cached.
        """
        if entity_id in self._cache:
            return self._cache[entity_id]
        return numpy.asarray(self._table[self._index[entity_id]], dtype="f")  # type: ignore[index]

    def clear(self) -> None:
        """Forget every encoding (the backbone has changed)."""
        self._cache.clear()
        self._index, self._table = {}, None
        self.precomputed = False

    def forget(self, entity_ids: Iterable[str]) -> None:
        """Forget the encodings of some entities (their text has changed).

        entity_ids (Iterable[str]): The entities.
        """
        for entity_id in entity_ids:
            self._cache.pop(entity_id, None)
            # The table's row stays, unused: the table may be a read-only map.
            self._index.pop(entity_id, None)

    def set_dtype(self, dtype: str) -> None:
        """Store the precomputed table as float32 or float16 (saved so).

        dtype (str): "float32" or "float16".
        RAISES (ValueError): For another dtype.
        """
        if dtype not in ("float32", "float16"):
            raise ValueError(f"Entity vectors are stored as float32 or float16, not {dtype}")
        if self._table is not None:
            self._table = numpy.asarray(self._table, dtype=dtype)

    def encode(
        self, kb: LinkerKB, entity_ids: List[str], backbone: Backbone, *, cache_size: int, use_cache: bool = True
    ) -> numpy.ndarray:
        """Encodings of entities, from the table or the cache where they are.

        kb (LinkerKB): The knowledge base.
        entity_ids (List[str]): The entities (repeats allowed).
        backbone (Backbone): The backbone.
        cache_size (int): Encodings cached (least recently used evicted); 0:
            none. Precomputed ones are not counted and never evicted.
        use_cache (bool): False encodes every entity afresh and caches nothing
            (training: the backbone changes at every step).
        RETURNS (numpy.ndarray): (len(entity_ids), width) float32.
        """
        if not use_cache or cache_size == 0:
            return encode_texts([entity_text(kb, e) for e in entity_ids], backbone)
        missing = [e for e in dict.fromkeys(entity_ids) if e not in self._index and e not in self._cache]
        if missing:
            vectors = encode_texts([entity_text(kb, e) for e in missing], backbone)
            self._cache.update(zip(missing, vectors))
        rows = []
        for entity_id in entity_ids:
            if entity_id in self._index:
                rows.append(self._table[self._index[entity_id]])  # type: ignore[index]
            else:
                self._cache.move_to_end(entity_id)
                rows.append(self._cache[entity_id])
        while len(self._cache) > cache_size:
            self._cache.popitem(last=False)
        return numpy.asarray(rows, dtype="f")

    def precompute(self, kb: LinkerKB, backbone: Backbone, *, cache_size: int) -> int:
        """Encode every KB entity now and keep them all (in the table).

        kb (LinkerKB): The knowledge base.
        backbone (Backbone): The backbone.
        cache_size (int): The cache's size; the KB must fit.
        RETURNS (int): The number of entities encoded.
        RAISES (ValueError): If the KB has more entities than cache_size.
        """
        ids = list(kb.entity_ids)
        if len(ids) > cache_size:
            raise ValueError(
                f"The KB has {len(ids):,} entities, more than cache_size ({cache_size:,}): raise the "
                "component's cache_size to precompute them."
            )
        self.clear()
        self._table = encode_texts([entity_text(kb, e) for e in ids], backbone)
        self._index = {e: i for i, e in enumerate(ids)}
        self.precomputed = True
        return len(ids)

    def _kept(self) -> "tuple[List[str], numpy.ndarray]":
        # Every kept encoding as (ids, one array in memory): the table's live
        # rows, then what was encoded since (e.g. entities added later).
        ids = list(self._index)
        dtype = self.dtype
        rows = [self._index[e] for e in ids]
        table = self._table[rows] if ids else numpy.zeros((0, 0), dtype=dtype)  # type: ignore[index]
        extra = [e for e in self._cache if e not in self._index]
        if extra:
            more = numpy.stack([self._cache[e] for e in extra]).astype(dtype)
            table = numpy.concatenate([table, more]) if ids else more
        return ids + extra, numpy.ascontiguousarray(table, dtype=dtype)

    def to_disk(self, path: Path) -> None:
        """Save precomputed vectors (ids.json, vectors.npy in the table's
        dtype); without them, remove what an earlier save left there (it
        belongs to old weights).

        path (Path): The folder.
        """
        path = Path(path)
        if not self.precomputed or not (self._index or self._cache):
            shutil.rmtree(path, ignore_errors=True)
            return
        path.mkdir(parents=True, exist_ok=True)
        ids, table = self._kept()
        # Written aside and renamed: the table may be a map of the file being replaced.
        tmp = path / f".vectors.{os.getpid()}.npy"
        numpy.save(tmp, table)
        srsly.write_json(path / "ids.json", ids)
        os.replace(tmp, path / "vectors.npy")

    def from_disk(self, path: Path) -> "EntityEncoder":
        """Load what to_disk saved (any version: the files are the same),
        the vectors memory-mapped.

        path (Path): The folder.
        RETURNS (EntityEncoder): self.
        RAISES (ValueError): If a file is missing or the shapes disagree.
        """
        ids_path, vectors_path = Path(path) / "ids.json", Path(path) / "vectors.npy"
        if not ids_path.exists() or not vectors_path.exists():
            raise ValueError(f"{path} needs ids.json and vectors.npy (written by to_disk).")
        ids = srsly.read_json(ids_path)
        vectors = numpy.load(vectors_path, mmap_mode="r")
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise ValueError(
                f"{vectors_path}: expected {len(ids)} rows (one per id in ids.json), got an array of shape "
                f"{vectors.shape}"
            )
        self._cache = OrderedDict()
        self._index, self._table = {e: i for i, e in enumerate(ids)}, vectors
        self.precomputed = True
        return self

    def __getstate__(self) -> Dict[str, Any]:
        # A pickled pipeline (nlp.pipe(n_process=N) workers) carries the
        # precomputed table (as an array: a map does not travel); a
        # prediction-time cache is rebuilt on demand.
        state = dict(self.__dict__)
        if self._table is not None:
            state["_table"] = numpy.asarray(self._table)
        if not self.precomputed:
            state["_cache"] = OrderedDict()
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        # Pickles of the in-memory-dict version have no table: their
        # precomputed vectors are all in the cache.
        self.__dict__.update({"_index": {}, "_table": None, **state})
