"""The registered KB loaders, for ``[initialize.components.<linker>.kb_loader]``
(and anything else that takes a `Callable[[Vocab], LinkerKB]`).

`spacy_llm_ner.load_kb.v1` takes any KB the package reads: a saved LinkerKB
folder or a JSONL / CSV / TSV / CTD file (formats in `readers.py`). The
per-format loaders (`load_kb_jsonl.v1`, `load_kb_csv.v1`, `load_kb_ctd.v1`,
`load_kb_disk.v1`) are kept, with their settings, for the configs that name
them; they go the same way, with the format fixed and their reader options
passed on.

The readers are re-exported here (`from spacy_llm_ner.kb.loaders import
read_records` keeps working).
"""
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from spacy.util import registry
from spacy.vocab import Vocab

from .candidates import STAGES
from .knowledge_base import LinkerKB
from .readers import (
    CSV_FIELDS,
    CTD_COLUMNS,
    JSONL_FIELDS,
    KB_FORMATS,
    PathLike,
    read_csv,
    read_ctd,
    read_jsonl,
    read_records,
    resolve_format,
)

__all__ = [
    "CSV_FIELDS", "CTD_COLUMNS", "JSONL_FIELDS", "KB_FORMATS", "FOLDER", "KBLoader", "PathLike",
    "kb_loader_for", "make_csv_kb_loader", "make_ctd_kb_loader", "make_disk_kb_loader", "make_empty_linker_kb",
    "make_jsonl_kb_loader", "make_kb_loader", "read_csv", "read_ctd", "read_jsonl", "read_records",
    "resolve_format",
]

KBLoader = Callable[[Vocab], LinkerKB]
# The `fmt` of `kb_loader_for` for a saved LinkerKB folder only (not a file format).
FOLDER = "folder"


def kb_loader_for(
    path: str,
    *,
    fmt: str = "auto",
    kb_options: Optional[Dict[str, Any]] = None,
    mmap: bool = True,
    **reader_options: Any,
) -> KBLoader:
    """The one loading path behind every registered loader: a folder is a
    saved LinkerKB, anything else a file read by `read_records`.

    path (str): The folder or file.
    fmt (str): FOLDER (a saved LinkerKB, nothing else), or a file format of
        KB_FORMATS (a folder is still loaded as a saved LinkerKB).
    kb_options (Optional[Dict[str, Any]]): For files: `LinkerKB.from_records`
        options (top_k, stages, entity_vector_length).
    mmap (bool): For folders: memory-map the KB.
    **reader_options: For files: options of `read_records` and the format's
        reader (strip_prefix, on_error, ...).
    RETURNS (Callable[[Vocab], LinkerKB]): The loader.
    """

    def load(vocab: Vocab) -> LinkerKB:
        # A folder keeps its own cascade settings, saved with it.
        if fmt == FOLDER or Path(path).is_dir():
            return LinkerKB.load(path, vocab, mmap=mmap)
        records = read_records(path, fmt=fmt, **reader_options)
        return LinkerKB.from_records(vocab, records, **(kb_options or {}))

    return load


def _kb_options(top_k: int, stages: Sequence[str], entity_vector_length: int) -> Dict[str, Any]:
    return {"top_k": top_k, "stages": tuple(stages), "entity_vector_length": entity_vector_length}


@registry.misc("spacy_llm_ner.load_kb.v1")
def make_kb_loader(
    *,
    path: str,
    format: str = "auto",
    strip_prefix: Optional[str] = None,
    top_k: int = 10,
    stages: List[str] = list(STAGES),
    entity_vector_length: int = 0,
    mmap: bool = True,
    strict: bool = False,
    columns: Optional[List[str]] = None,
) -> KBLoader:
    """A kb_loader for any KB the package reads: a LinkerKB folder (from
    `build-kb` or `to_disk`; memory-mapped, its own cascade settings) or a
    JSONL / CSV / TSV / CTD file, by name or `format`.

    path (str): The folder or file.
    format (str): For files: "auto", "jsonl", "csv", "tsv" or "ctd".
    strip_prefix (Optional[str]): For files: id prefix to strip.
    top_k, stages, entity_vector_length: For files: see `LinkerKB`.
    mmap (bool): For folders: memory-map the KB.
    strict (bool): For files: a last line without a final newline (a cut
        file) is an error, not a warning.
    columns (Optional[List[str]]): For a CSV/TSV file without a header row:
        its columns in order, e.g. ["id", "name", "description"].
    RETURNS (Callable[[Vocab], LinkerKB]): The loader.
    """
    options = _kb_options(top_k, stages, entity_vector_length)
    # Only when given: the JSONL and CTD readers take no `columns`.
    csv_options = {} if columns is None else {"columns": columns}
    return kb_loader_for(
        path, fmt=format, kb_options=options, mmap=mmap, strip_prefix=strip_prefix, strict=strict, **csv_options
    )


@registry.misc("spacy_llm_ner.load_kb_jsonl.v1")
def make_jsonl_kb_loader(
    *,
    path: str,
    strip_prefix: Optional[str] = None,
    id_prefixes_to_strip: List[str] = [],
    on_error: str = "raise",
    strict: bool = False,
    ignore_unknown_fields: bool = False,
    top_k: int = 10,
    stages: List[str] = list(STAGES),
    entity_vector_length: int = 0,
) -> KBLoader:
    """A kb_loader that builds a LinkerKB from a JSONL file (prefer
    `spacy_llm_ner.load_kb.v1`, which reads every format).

    path (str): The file. Other options: see `read_jsonl` and `LinkerKB`.
    RETURNS (Callable[[Vocab], LinkerKB]): The loader.
    """
    return kb_loader_for(
        path, fmt="jsonl", kb_options=_kb_options(top_k, stages, entity_vector_length),
        strip_prefix=strip_prefix, id_prefixes_to_strip=id_prefixes_to_strip, on_error=on_error,
        ignore_unknown_fields=ignore_unknown_fields, strict=strict,
    )


@registry.misc("spacy_llm_ner.load_kb_csv.v1")
def make_csv_kb_loader(
    *,
    path: str,
    delimiter: str = ",",
    strip_prefix: Optional[str] = None,
    id_prefixes_to_strip: List[str] = [],
    on_error: str = "raise",
    strict: bool = False,
    top_k: int = 10,
    stages: List[str] = list(STAGES),
    entity_vector_length: int = 0,
    columns: Optional[List[str]] = None,
) -> KBLoader:
    """A kb_loader that builds a LinkerKB from a CSV/TSV file (prefer
    `spacy_llm_ner.load_kb.v1`, which reads every format).

    path (str): The file. delimiter (str): "," or "\\t". columns
        (Optional[List[str]]): For a file without a header row, its columns
        in order, e.g. ["id", "name", "description"]. Other options: see
        `read_csv` and `LinkerKB`.
    RETURNS (Callable[[Vocab], LinkerKB]): The loader.
    """
    return kb_loader_for(
        path, fmt="csv", kb_options=_kb_options(top_k, stages, entity_vector_length),
        delimiter=delimiter, columns=columns, strip_prefix=strip_prefix, id_prefixes_to_strip=id_prefixes_to_strip,
        on_error=on_error, strict=strict,
    )


@registry.misc("spacy_llm_ner.load_kb_ctd.v1")
def make_ctd_kb_loader(
    *,
    path: str,
    strip_prefix: Optional[str] = "MESH:",
    id_prefixes_to_strip: List[str] = [],
    entity_type: str = "Disease",
    on_error: str = "raise",
    strict: bool = False,
    top_k: int = 10,
    stages: List[str] = list(STAGES),
    entity_vector_length: int = 0,
) -> KBLoader:
    """A kb_loader that builds a LinkerKB from CTD's disease vocabulary
    (prefer `spacy_llm_ner.load_kb.v1`, which reads every format).

    path (str): CTD_diseases.tsv[.gz]. strip_prefix (Optional[str]):
        default "MESH:" (BC5CDR's ids carry none). Other options: see
        `read_ctd` and `LinkerKB`.
    RETURNS (Callable[[Vocab], LinkerKB]): The loader.
    """
    return kb_loader_for(
        path, fmt="ctd", kb_options=_kb_options(top_k, stages, entity_vector_length),
        strip_prefix=strip_prefix, id_prefixes_to_strip=id_prefixes_to_strip, entity_type=entity_type,
        on_error=on_error, strict=strict,
    )


@registry.misc("spacy_llm_ner.load_kb_disk.v1")
def make_disk_kb_loader(*, path: str, mmap: bool = True) -> KBLoader:
    """A kb_loader that reads a LinkerKB saved with `to_disk` (prefer
    `spacy_llm_ner.load_kb.v1`, which reads folders and files).

    path (str): The folder.
    mmap (bool): Memory-map it.
    RETURNS (Callable[[Vocab], LinkerKB]): The loader.
    """
    return kb_loader_for(path, fmt=FOLDER, mmap=mmap)


@registry.misc("spacy_llm_ner.empty_linker_kb.v1")
def make_empty_linker_kb(*, mmap: bool = True) -> Callable[[Vocab, int], LinkerKB]:
    """For the entity linker's `generate_empty_kb` setting, so that a saved
    pipeline restores a LinkerKB (not spaCy's InMemoryLookupKB) from disk.

    mmap (bool): Memory-map the KB when the pipeline is loaded.
    RETURNS (Callable[[Vocab, int], LinkerKB]): vocab, entity_vector_length
        -> empty KB.
    """

    def create(vocab: Vocab, entity_vector_length: int) -> LinkerKB:
        return LinkerKB(vocab, entity_vector_length, mmap=mmap)

    return create
