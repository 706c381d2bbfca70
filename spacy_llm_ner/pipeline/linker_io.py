"""Saving and loading `transformer_entity_linker`: cfg, model, the KB (a
memory-mapped LinkerKB folder) and precomputed entity vectors; pickling for
`nlp.pipe(n_process=N)` workers.

Kept apart from the component so that `entity_linker.py` reads as the
pipe's logic; the component class mixes this in.
"""
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Tuple, Union

import srsly
from spacy import util
from spacy.util import SimpleFrozenList

from ..kb.knowledge_base import LinkerKB
from .link_annotations import COMPONENT


class LinkerSerialization:
    """to_bytes / from_bytes / to_disk / from_disk / pickling of the linker
    (its vocab, model, name, cfg, scorer, kb and entity_encoder)."""

    def to_bytes(self, *, exclude: Iterable[str] = SimpleFrozenList()) -> bytes:
        """Serialise the component, its KB included.

        RETURNS (bytes): The data.
        """
        serialize: Dict[str, Callable[[], bytes]] = {
            "cfg": lambda: srsly.json_dumps(self.cfg),
            "vocab": lambda: self.vocab.to_bytes(exclude=exclude),
            "kb": lambda: (self.kb if self.kb is not None else LinkerKB(self.vocab)).to_bytes(),
            "model": self.model.to_bytes,
        }
        return util.to_bytes(serialize, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = SimpleFrozenList()) -> "LinkerSerialization":
        """Load what to_bytes wrote.

        bytes_data (bytes): The data.
        RETURNS (LinkerSerialization): self.
        """

        def load_kb(b: bytes) -> None:
            try:
                self.kb = LinkerKB(self.vocab).from_bytes(b)
            except Exception as e:
                raise ValueError(f"[{COMPONENT}] Could not read the knowledge base from bytes: {e}") from e

        deserialize: Dict[str, Callable[[bytes], Any]] = {
            "cfg": lambda b: self.cfg.update(srsly.json_loads(b)),
            "vocab": lambda b: self.vocab.from_bytes(b, exclude=exclude),
            "kb": load_kb,
            "model": lambda b: self.model.from_bytes(b),
        }
        util.from_bytes(bytes_data, deserialize, exclude)
        self.clear_cache()
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = SimpleFrozenList()) -> None:
        """Save the component to a folder: cfg, model, and the KB (in kb/).

        path (Union[str, Path]): The folder.
        """
        serialize: Dict[str, Callable[[Path], None]] = {
            "vocab": lambda p: self.vocab.to_disk(p, exclude=exclude),
            "cfg": lambda p: srsly.write_json(p, self.cfg),
            "kb": lambda p: (self.kb if self.kb is not None else LinkerKB(self.vocab)).to_disk(p),
            "model": lambda p: self.model.to_disk(p),
            "entity_vectors": self.entity_encoder.to_disk,
        }
        util.to_disk(path, serialize, exclude)

    def from_disk(
        self, path: Union[str, Path], *, exclude: Iterable[str] = SimpleFrozenList()
    ) -> "LinkerSerialization":
        """Load a folder written by to_disk (the KB is memory-mapped).

        path (Union[str, Path]): The folder.
        RETURNS (LinkerSerialization): self.
        RAISES (ValueError): If the KB folder is missing or unreadable.
        """

        def load_kb(p: Path) -> None:
            if not p.is_dir() or not (p / "meta.json").exists():
                raise ValueError(
                    f"[{COMPONENT}] The knowledge base of '{self.name}' is missing: expected a LinkerKB "
                    f"folder at {p}. Copy the whole pipeline folder, or rebuild the KB and save it there."
                )
            try:
                self.kb = LinkerKB.load(p, self.vocab)
            except Exception as e:
                raise ValueError(
                    f"[{COMPONENT}] Could not load the knowledge base of '{self.name}' from {p}: {e}"
                ) from e

        def load_model(p: Path) -> None:
            with Path(p).open("rb") as f:
                self.model.from_bytes(f.read())

        deserialize: Dict[str, Callable[[Path], Any]] = {
            "cfg": lambda p: self.cfg.update(srsly.read_json(p)),
            "vocab": lambda p: self.vocab.from_disk(p, exclude=exclude),
            "kb": load_kb,
            "model": load_model,
        }
        util.from_disk(path, deserialize, exclude)
        self.clear_cache()
        vectors = Path(path) / "entity_vectors"
        if "entity_vectors" not in exclude and vectors.exists():
            try:
                self.entity_encoder.from_disk(vectors)
            except ValueError as e:
                raise ValueError(f"[{COMPONENT}] {e}") from e
        return self

    def __reduce__(self) -> Tuple[Any, ...]:
        # spaCy's pipes are Cython classes whose fields live outside
        # __dict__; the pipeline handle travels as the tokenizer and upstream
        # component themselves, the entity encoder with what it precomputed.
        extra = dict(self.__dict__)
        extra["pipeline_handle"] = self.pipeline_handle.detached(self.model.get_ref("tok2vec"), name=self.name)
        fields = (self.vocab, self.model, self.name, self.cfg, self.scorer, self.kb)
        return (_unpickle_linker, (type(self), fields, extra))


def _unpickle_linker(cls: type, fields: Tuple[Any, ...], extra: Dict[str, Any]) -> "LinkerSerialization":
    vocab, model, name, cfg, scorer, kb = fields
    linker = cls(vocab, model, name, scorer=scorer)
    linker.cfg = cfg
    linker.__dict__.update(extra)
    linker.kb = kb
    return linker

