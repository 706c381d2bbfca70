"""Streaming readers for knowledge-base files (the registered loaders that use
them are in `loaders.py`).

Formats (any file may be gzip-compressed; it is detected by its magic bytes):

JSONL, one entity per line (blank lines allowed)::

    {"id": "D003920", "name": "Diabetes Mellitus",
     "aliases": ["diabetes", "DM"],            # optional, list of strings
     "description": "A heterogeneous group...",  # optional
     "type": "Disease",                          # optional
     "prior": 0.01,                              # optional P(entity) in [0, 1]
     "alias_priors": {"diabetes": 0.6},          # optional P(alias|entity), sum <= 1
     "alt_ids": ["OMIM:125853"]}                 # optional, list of strings

    Unknown fields are an error (a misspelt "alias" would otherwise lose
    data silently) unless `ignore_unknown_fields=True`.

CSV / TSV (read in `csv_reader.py`) with a header row, or with ``columns=``
for a file without one: columns ``id``, ``name`` (required), ``aliases`` and
``alt_ids`` (``|``-separated), ``description``, ``type``, ``prior``.

CTD MEDIC diseases (``CTD_diseases.tsv[.gz]``): ``#`` comment lines, then
tab-separated DiseaseName, DiseaseID, AltDiseaseIDs (``|``), Definition,
ParentIDs, TreeNumbers, ParentTreeNumbers, Synonyms (``|``), SlimMappings.

Every problem raises `KBFormatError` (a ValueError) naming the file, the line
and the field; with ``on_error="skip"`` bad records are skipped instead and
counted in one warning at the end. A file that yields no record at all
(empty, blank or header only) is a `KBFormatError` naming the file.
Whitespace around ids and alternative ids (" D012345 ", "MESH:D012345\t") is
stripped and counted in one warning with the first example; id prefixes
(``strip_prefix="MESH:"`` or ``id_prefixes_to_strip=["MESH:", "OMIM:"]``) are
then removed from ids and alternative ids alike. The shared line, error and id
handling is in `reading.py`.
"""
import json
import zlib
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from .csv_reader import CSV_FIELDS, read_csv
from .ctd_columns import CTD_COLUMNS, ctd_problem
from .reading import Errors, Ids, PathLike, finish_file, finish_record, numbered_lines, open_bytes, require_entities, split_ids, split_names
from .records import EntityRecord

__all__ = [
    "CSV_FIELDS", "CTD_COLUMNS", "JSONL_FIELDS", "KB_FORMATS", "PathLike", "read_csv", "read_ctd", "read_jsonl",
    "read_records", "resolve_format",
]
JSONL_FIELDS = ("id", "name", "aliases", "description", "type", "prior", "alias_priors", "alt_ids")
@require_entities
def read_jsonl(
    path: PathLike,
    *,
    strip_prefix: Optional[str] = None,
    id_prefixes_to_strip: Sequence[str] = (),
    on_error: str = "raise",
    ignore_unknown_fields: bool = False,
    strict: bool = False,
) -> Iterator[EntityRecord]:
    """Stream records from a JSONL file (schema in the module docstring).

    path (PathLike): The file (.jsonl or .jsonl.gz).
    strip_prefix (Optional[str]): Id prefix to remove, e.g. "MESH:".
    id_prefixes_to_strip (Sequence[str]): More prefixes to remove.
    on_error (str): "raise" (default) or "skip" (counted in a warning).
    strict (bool): A last line without a final newline is an error, not a warning.
    ignore_unknown_fields (bool): Accept fields outside the schema.
    YIELDS (EntityRecord): Validated records.
    """
    errors, ids = Errors(path, on_error, strict), Ids(strip_prefix, id_prefixes_to_strip)
    for number, text in numbered_lines(path, errors):
        if not text.strip():
            continue
        rec = _jsonl_record(text, errors=errors, line=number, ignore_unknown_fields=ignore_unknown_fields)
        done = None if rec is None else finish_record(rec, ids=ids, errors=errors, line=number)
        if done is not None:
            yield done
    finish_file(path, ids=ids, errors=errors)


def _jsonl_record(text: str, *, errors: Errors, line: int, ignore_unknown_fields: bool) -> Optional[EntityRecord]:
    """The record on one JSONL line, or None (reported to `errors`)."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        errors(f"malformed JSON ({e.msg} at column {e.colno})", line=line)
        return None
    except RecursionError:
        errors("malformed JSON (nested too deeply)", line=line)
        return None
    if not isinstance(obj, dict):
        errors(f"expected a JSON object, got {type(obj).__name__}", line=line)
        return None
    unknown = sorted(set(obj) - set(JSONL_FIELDS))
    if unknown and not ignore_unknown_fields:
        errors(f"unknown field(s) {unknown}; expected {list(JSONL_FIELDS)}", line=line, field=unknown[0])
        return None
    missing = [k for k in ("id", "name") if k not in obj]
    if missing:
        errors(f"missing required field {missing[0]!r}", line=line, field=missing[0])
        return None
    return EntityRecord(
        id=obj["id"],
        name=obj["name"],
        aliases=obj.get("aliases", []) if obj.get("aliases") is not None else [],
        description=obj.get("description") or "",
        type=obj.get("type") or "",
        prior=obj.get("prior"),
        alias_priors=obj.get("alias_priors") if obj.get("alias_priors") is not None else {},
        alt_ids=obj.get("alt_ids") if obj.get("alt_ids") is not None else [],
    )


@require_entities
def read_ctd(
    path: PathLike,
    *,
    strip_prefix: Optional[str] = None,
    id_prefixes_to_strip: Sequence[str] = (),
    entity_type: str = "Disease",
    on_error: str = "raise",
    strict: bool = False,
) -> Iterator[EntityRecord]:
    """Stream records from CTD's MEDIC disease vocabulary.

    path (PathLike): CTD_diseases.tsv or .tsv.gz.
    strip_prefix (Optional[str]): e.g. "MESH:" so ids match BC5CDR's.
    id_prefixes_to_strip (Sequence[str]): More prefixes to remove.
    entity_type (str): The `type` given to every record.
    on_error (str): "raise" or "skip".
    strict (bool): A last line without a final newline is an error, not a warning.
    YIELDS (EntityRecord): One per disease; AltDiseaseIDs become `alt_ids`,
        Definition the description, Synonyms the aliases.
    """
    errors, ids = Errors(path, on_error, strict), Ids(strip_prefix, id_prefixes_to_strip)
    for number, text in numbered_lines(path, errors):
        if text.startswith("#") or not text.strip():
            continue
        cols = text.rstrip("\r\n").split("\t")
        if len(cols) not in (len(CTD_COLUMNS), len(CTD_COLUMNS) - 1):
            errors(f"expected {len(CTD_COLUMNS)} tab-separated columns, got {len(cols)}", line=number)
            continue
        problem = ctd_problem(cols)
        if problem is not None:
            errors(problem[1], line=number, field=problem[0])
            continue
        rec = EntityRecord(
            id=cols[1],  # stripped (and counted) by `finish_record`
            name=cols[0].strip(),
            aliases=split_names(cols[7]),
            description=cols[3].strip(),
            type=entity_type,
            alt_ids=split_ids(cols[2]),
        )
        done = finish_record(rec, ids=ids, errors=errors, line=number)
        if done is not None:
            yield done
    finish_file(path, ids=ids, errors=errors)


KB_FORMATS = ("auto", "jsonl", "csv", "tsv", "ctd")


def resolve_format(path: PathLike, fmt: str) -> str:
    """The format of a KB file.

    path (PathLike): The file.
    fmt (str): One of KB_FORMATS; "auto" decides by the content first (CTD's
        header comments), then by the file name (a name containing "ctd" is
        the CTD vocabulary, otherwise the extension, and JSONL when it says
        nothing), so that a renamed copy of a CTD download still reads.
    RETURNS (str): "jsonl", "csv", "tsv" or "ctd".
    RAISES (ValueError): On a format outside KB_FORMATS.
    """
    if fmt not in KB_FORMATS:
        raise ValueError(f"Unknown KB format {fmt!r}: expected one of {', '.join(KB_FORMATS)}.")
    if fmt != "auto":
        return fmt
    name = Path(path).name.lower().removesuffix(".gz")
    if "ctd" in name or _has_ctd_header(path):
        return "ctd"
    return {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv"}.get(Path(name).suffix, "jsonl")


def _has_ctd_header(path: PathLike, *, max_lines: int = 64) -> bool:
    """Whether the file opens with CTD's comment header (its "# Fields:" line
    names DiseaseName and DiseaseID, or it names the database)."""
    try:
        with open_bytes(Path(path)) as file_:
            for _, raw in zip(range(max_lines), file_):
                line = raw.decode("utf8", errors="replace")
                if not line.startswith("#"):
                    return False
                if "Comparative Toxicogenomics Database" in line or ("DiseaseName" in line and "DiseaseID" in line):
                    return True
    except (OSError, EOFError, zlib.error):
        return False  # unreadable here: the reader itself reports it, naming the file
    return False


def read_records(
    path: PathLike, *, fmt: str = "auto", strip_prefix: Optional[str] = None, **options: Any
) -> Iterator[EntityRecord]:
    """Stream validated records from a KB file of any supported format.

    path (PathLike): JSONL, CSV, TSV or the CTD diseases TSV (.gz too).
    fmt (str): One of KB_FORMATS (see `resolve_format`).
    strip_prefix (Optional[str]): Id prefix to strip, e.g. "MESH:".
    **options: Further keyword options of the format's reader (`read_jsonl`,
        `read_csv`, `read_ctd`), e.g. on_error.
    RETURNS (Iterator[EntityRecord]): The records.
    """
    fmt = resolve_format(path, fmt)
    if fmt == "jsonl":
        return read_jsonl(path, strip_prefix=strip_prefix, **options)
    if fmt == "ctd":
        return read_ctd(path, strip_prefix=strip_prefix, **options)
    options = {"delimiter": "\t" if fmt == "tsv" else ",", **options}
    return read_csv(path, strip_prefix=strip_prefix, **options)
