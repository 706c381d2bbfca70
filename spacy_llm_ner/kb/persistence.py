"""How a `LinkerKB` is saved: the folder layout, the bytes message, and one
clear error for a missing or damaged folder.

A folder holds ``meta.json`` (the KB's settings and format version), the
n-gram idf and the entity vectors as .npy files, and ``segments/<i>/`` with
each segment's arrays (.npy) and tries (.marisa), all memory-mappable. The
bytes message (`to_bytes`, pickling) holds the same parts in msgpack.

No spaCy here: `build-kb` writes a folder without importing it (writer.py).
"""
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple, Union

import srsly

from .candidates import CascadeConfig
from .ngrams import Idf
from .records import KBFormatError
from .segment import Segment
from .storage import decode_array, decode_bundle, encode_array, encode_bundle, load_bundle, save_bundle
from .store import EntityStore

# 2: each segment's n-gram index also stores its forward rows (ng_fwd_*).
# Format 1 folders load as they are: their forward rows are transposed from
# the posting lists on the first n-gram search.
# 3: each segment built since also stores its word index (wd_*, words.py),
# and the cascade settings name the n-gram stage's retrieval; a segment
# without one (read from format 1 or 2) retrieves through 3-grams. Older
# code refuses format 3 by its number rather than failing on the new keys.
# 4: each segment built since also stores the hashes of its aliases and
# normal forms (ah_*, nh_*, string_index.py) for vectorised exact look-ups;
# a segment without them (read from formats 1 to 3) is looked up by trie.
FORMAT_VERSION = 4
READABLE_FORMATS = (1, 2, 3, 4)


def kb_settings(
    *, config: CascadeConfig, entity_vector_length: int, use_doc_abbreviations: bool, n_segments: int
) -> Dict[str, Any]:
    """The settings a saved KB keeps (meta.json, and the bytes message): the
    one definition for `LinkerKB` and `write_kb`.

    config (CascadeConfig): The cascade's settings.
    entity_vector_length (int): Length of the entity vectors.
    use_doc_abbreviations (bool): See `LinkerKB`.
    n_segments (int): How many segments the store has.
    RETURNS (Dict[str, Any]): The settings, with the format version.
    """
    return {
        "format": FORMAT_VERSION,
        "entity_vector_length": entity_vector_length,
        "cascade": asdict(config),
        "use_doc_abbreviations": use_doc_abbreviations,
        "n_segments": n_segments,
    }


def check_format(cfg: Dict[str, Any]) -> None:
    """Refuse settings written by a format version this code cannot read.

    cfg (Dict[str, Any]): The saved settings.
    RAISES (ValueError): On another version.
    """
    if cfg.get("format") not in READABLE_FORMATS:
        raise ValueError(f"unsupported LinkerKB format {cfg.get('format')!r} (expected one of {READABLE_FORMATS})")


def store_to_bytes(cfg: Dict[str, Any], store: EntityStore) -> bytes:
    """Serialise the settings and entities.

    cfg (Dict[str, Any]): The KB's settings (with the format version).
    store (EntityStore): Segments, idf, vectors.
    RETURNS (bytes): The msgpack message.
    """
    idf = store.idf
    msg = {
        "cfg": cfg,
        "idf": None if idf is None else {k: encode_array(v) for k, v in idf.arrays().items()},
        "vectors": encode_array(store.vectors),
        "segments": [encode_bundle(s.saved_arrays(), s.tries, s.meta) for s in store.segments],
    }
    return srsly.msgpack_dumps(msg)


def store_from_bytes(bytes_data: bytes) -> Tuple[Dict[str, Any], EntityStore]:
    """Read what `store_to_bytes` wrote.

    bytes_data (bytes): The message.
    RETURNS (Tuple[Dict[str, Any], EntityStore]): Settings and entities.
    RAISES (ValueError): On another format version.
    """
    msg = srsly.msgpack_loads(bytes_data)
    check_format(msg["cfg"])
    idf = None if msg["idf"] is None else Idf.from_arrays({k: decode_array(v) for k, v in msg["idf"].items()})
    segments = [Segment(*decode_bundle(b), idf=idf) for b in msg["segments"]]  # type: ignore[arg-type]
    return msg["cfg"], EntityStore(segments=segments, idf=idf, vectors=decode_array(msg["vectors"]))


def save_folder(path: Path, cfg: Dict[str, Any], store: EntityStore) -> None:
    """Write the folder (layout in the module docstring).

    path (Path): The folder (created).
    cfg (Dict[str, Any]): The KB's settings (meta.json).
    store (EntityStore): Segments, idf, vectors.
    """
    for i, seg in enumerate(store.segments):
        save_segment(path, i, seg)
    save_head(path, cfg, store)


def save_segment(path: Path, i: int, seg: Segment) -> Path:
    """Write segment i of a folder.

    path (Path): The folder. i (int): The segment's number. seg (Segment): It.
    RETURNS (Path): The segment's folder.
    """
    folder = path / "segments" / str(i)
    save_bundle(folder, seg.saved_arrays(), seg.tries, seg.meta)
    return folder


def save_head(path: Path, cfg: Dict[str, Any], store: EntityStore) -> None:
    """Write the vectors, the idf and meta.json, after the segments: a folder
    cut short by a crash has no meta.json, and loading it says so instead of
    reading part of a KB.

    path (Path): The folder. cfg (Dict[str, Any]): The settings.
    store (EntityStore): Its vectors and idf.
    """
    arrays = {"vectors": store.vectors}
    if store.idf is not None:
        arrays.update(store.idf.arrays())
    save_bundle(path, arrays, {}, cfg)


def load_segment(path: Path, i: int, idf: Idf, *, mmap: bool) -> Segment:
    """Read segment i of a folder.

    path (Path): The folder. i (int): The segment's number.
    idf (Idf): The KB's n-gram idf. mmap (bool): Memory-map it.
    RETURNS (Segment): The segment.
    """
    return Segment(*load_bundle(path / "segments" / str(i), mmap=mmap), idf=idf)  # type: ignore[arg-type]


def load_folder(path: Path, *, mmap: bool) -> Tuple[Dict[str, Any], EntityStore]:
    """Read a folder written by `save_folder` (call inside `loading`).

    path (Path): The folder.
    mmap (bool): Memory-map the arrays and tries.
    RETURNS (Tuple[Dict[str, Any], EntityStore]): Settings and entities.
    RAISES (ValueError): On another format version.
    """
    arrays, _, cfg = load_bundle(path, mmap=mmap)
    check_format(cfg)
    idf = Idf.from_arrays(arrays) if "idf_buckets" in arrays else None
    segments = [load_segment(path, i, idf, mmap=mmap) for i in range(int(cfg["n_segments"]))]
    return cfg, EntityStore(segments=segments, idf=idf, vectors=arrays["vectors"])


def read_settings(path: Path) -> Dict[str, Any]:
    """The settings of a saved folder, checked (call inside `loading`).

    path (Path): The folder.
    RETURNS (Dict[str, Any]): The meta.json settings.
    RAISES (ValueError): If they are not those of this format version.
    """
    cfg = srsly.read_json(path / "meta.json")
    if not isinstance(cfg, dict) or cfg.get("format") not in READABLE_FORMATS:
        raise ValueError(f"unsupported LinkerKB format {cfg.get('format') if isinstance(cfg, dict) else cfg!r}")
    return cfg


def check_folder(path: Union[str, Path]) -> Path:
    """The path of a saved LinkerKB folder.

    path (Union[str, Path]): The folder.
    RETURNS (Path): It, as a Path.
    RAISES (KBFormatError): If it is not a folder with meta.json.
    """
    path = Path(path)
    if not path.is_dir() or not (path / "meta.json").is_file():
        # A KB file given where a saved folder belongs: name the loader for both.
        hint = "; spacy_llm_ner.load_kb.v1 reads KB files (JSONL, CSV, TSV, CTD) too" if path.is_file() else ""
        raise KBFormatError(
            "no LinkerKB folder here (expected a folder with meta.json, written by LinkerKB.to_disk or "
            f"`python -m spacy_llm_ner build-kb`){hint}",
            path=str(path),
        )
    return path


@contextmanager
def loading(path: Path) -> Iterator[None]:
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
