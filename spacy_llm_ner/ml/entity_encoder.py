"""The entity side of the linker: KB entities encoded by the pipeline's
backbone from their text (`name: description`), with an LRU cache for
prediction and, optionally, precomputed vectors for every KB entity that are
saved with the pipeline.

An entity is represented by its text, not by a learned embedding per id, so
entities added to the KB after training are encoded like any other.
"""
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
    `precompute`, it holds every KB entity and is part of the pipeline (saved,
    loaded, pickled) until the backbone changes and `clear` is called.
    """

    def __init__(self) -> None:
        self._cache: "OrderedDict[str, numpy.ndarray]" = OrderedDict()
        self.precomputed = False

    @property
    def cached_ids(self) -> List[str]:
        """The entities whose encodings are cached, least recently used first."""
        return list(self._cache)

    def vector(self, entity_id: str) -> numpy.ndarray:
        """The cached encoding of an entity.

        entity_id (str): The entity.
        RETURNS (numpy.ndarray): Its encoding.
        RAISES (KeyError): If it is not cached.
        """
        return self._cache[entity_id]

    def clear(self) -> None:
        """Forget every encoding (the backbone has changed)."""
        self._cache.clear()
        self.precomputed = False

    def forget(self, entity_ids: Iterable[str]) -> None:
        """Forget the encodings of some entities (their text has changed).

        entity_ids (Iterable[str]): The entities.
        """
        for entity_id in entity_ids:
            self._cache.pop(entity_id, None)

    def encode(
        self, kb: LinkerKB, entity_ids: List[str], backbone: Backbone, *, cache_size: int, use_cache: bool = True
    ) -> numpy.ndarray:
        """Encodings of entities, from the cache where it has them.

        kb (LinkerKB): The knowledge base.
        entity_ids (List[str]): The entities (repeats allowed).
        backbone (Backbone): The backbone.
        cache_size (int): Encodings kept (least recently used evicted); 0: none.
        use_cache (bool): False encodes every entity afresh and caches nothing
            (training: the backbone changes at every step).
        RETURNS (numpy.ndarray): (len(entity_ids), width) float32.
        """
        if not use_cache or cache_size == 0:
            return encode_texts([entity_text(kb, e) for e in entity_ids], backbone)
        missing = [e for e in dict.fromkeys(entity_ids) if e not in self._cache]
        if missing:
            vectors = encode_texts([entity_text(kb, e) for e in missing], backbone)
            self._cache.update(zip(missing, vectors))
        rows = []
        for entity_id in entity_ids:
            self._cache.move_to_end(entity_id)
            rows.append(self._cache[entity_id])
        while len(self._cache) > cache_size:
            self._cache.popitem(last=False)
        return numpy.asarray(rows, dtype="f")

    def precompute(self, kb: LinkerKB, backbone: Backbone, *, cache_size: int) -> int:
        """Encode every KB entity now and keep them all.

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
        self._cache.update(zip(ids, encode_texts([entity_text(kb, e) for e in ids], backbone)))
        self.precomputed = True
        return len(ids)

    def to_disk(self, path: Path) -> None:
        """Save precomputed vectors (ids.json, vectors.npy); without them,
        remove what an earlier save left there (it belongs to old weights).

        path (Path): The folder.
        """
        path = Path(path)
        if not self.precomputed or not self._cache:
            shutil.rmtree(path, ignore_errors=True)
            return
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "ids.json", list(self._cache))
        numpy.save(path / "vectors.npy", numpy.stack(list(self._cache.values())).astype("f"))

    def from_disk(self, path: Path) -> "EntityEncoder":
        """Load what to_disk saved.

        path (Path): The folder.
        RETURNS (EntityEncoder): self.
        RAISES (ValueError): If a file is missing or the shapes disagree.
        """
        ids_path, vectors_path = Path(path) / "ids.json", Path(path) / "vectors.npy"
        if not ids_path.exists() or not vectors_path.exists():
            raise ValueError(f"{path} needs ids.json and vectors.npy (written by to_disk).")
        ids = srsly.read_json(ids_path)
        vectors = numpy.load(vectors_path)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise ValueError(
                f"{vectors_path}: expected {len(ids)} rows (one per id in ids.json), got an array of shape "
                f"{vectors.shape}"
            )
        self._cache = OrderedDict(zip(ids, vectors))
        self.precomputed = True
        return self

    def __getstate__(self) -> Dict[str, Any]:
        # A pickled pipeline (nlp.pipe(n_process=N) workers) carries the
        # precomputed vectors; a prediction-time cache is rebuilt on demand.
        if self.precomputed:
            return dict(self.__dict__)
        return {**self.__dict__, "_cache": OrderedDict()}
