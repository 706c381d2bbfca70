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

CSV / TSV with a header row: columns ``id``, ``name`` (required), ``aliases``
and ``alt_ids`` (``|``-separated), ``description``, ``type``, ``prior``.

CTD MEDIC diseases (``CTD_diseases.tsv[.gz]``): ``#`` comment lines, then
tab-separated DiseaseName, DiseaseID, AltDiseaseIDs (``|``), Definition,
ParentIDs, TreeNumbers, ParentTreeNumbers, Synonyms (``|``), SlimMappings.

Every problem raises `KBFormatError` (a ValueError) naming the file, the line
and the field; with ``on_error="skip"`` bad records are skipped instead and
counted in one warning at the end. A file that yields no record at all
(empty, blank or header only) is a `KBFormatError` naming the file. Id prefixes (``strip_prefix="MESH:"`` or
``id_prefixes_to_strip=["MESH:", "OMIM:"]``) are removed from ids and
alternative ids alike.
"""
import codecs
import csv
import functools
import gzip
import json
import warnings
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from .ctd_columns import CTD_COLUMNS, ctd_problem
from .records import EntityRecord, KBFormatError

PathLike = Union[str, Path]
JSONL_FIELDS = ("id", "name", "aliases", "description", "type", "prior", "alias_priors", "alt_ids")
CSV_FIELDS = ("id", "name", "aliases", "description", "type", "prior", "alt_ids")
class _Errors:
    """Raise, or count and skip, per `on_error`."""

    def __init__(self, path: PathLike, on_error: str, strict: bool = False) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip' (got {on_error!r})")
        self.path = str(path)
        self.on_error = on_error
        self.strict = strict
        self.skipped = 0
        self.shown: List[str] = []

    def __call__(self, message: str, *, line: Optional[int], field: str = "") -> None:
        err = KBFormatError(message, path=self.path, line=line, field=field)
        if self.on_error == "raise":
            raise err
        self.skipped += 1
        if len(self.shown) < 5:
            self.shown.append(str(err))

    def finish(self) -> None:
        if self.skipped:
            more = f" (first {len(self.shown)} shown)" if self.skipped > len(self.shown) else ""
            warnings.warn(f"{self.path}: skipped {self.skipped} bad record(s){more}: " + "; ".join(self.shown), stacklevel=3)


class _Ids:
    """Prefix stripping and duplicate detection."""

    def __init__(self, strip_prefix: Optional[str], id_prefixes_to_strip: Sequence[str]) -> None:
        self.prefixes = tuple(p for p in [strip_prefix, *id_prefixes_to_strip] if p)
        self.seen: Dict[str, int] = {}

    def clean(self, entity_id: str) -> str:
        for prefix in self.prefixes:
            if entity_id.startswith(prefix):
                return entity_id[len(prefix) :]
        return entity_id


def _require_entities(reader: Callable[..., Iterator[EntityRecord]]) -> Callable[..., Iterator[EntityRecord]]:
    """Make a KB reader raise when its file yields no record: an empty KB
    built from an empty or truncated download would link nothing, silently.

    reader (Callable[..., Iterator[EntityRecord]]): A reader taking the path first.
    RETURNS (Callable[..., Iterator[EntityRecord]]): The same reader, raising
        KBFormatError naming the file when it yields nothing.
    """

    @functools.wraps(reader)
    def read(path: PathLike, *args: Any, **kwargs: Any) -> Iterator[EntityRecord]:
        n_records = 0
        for record in reader(path, *args, **kwargs):
            n_records += 1
            yield record
        if n_records == 0:
            raise KBFormatError("no entities (the file is empty or holds no valid record)", path=str(path))

    return read


def _lines(path: PathLike, errors: _Errors) -> Iterator[Tuple[int, str]]:
    """(line number, text) of a UTF-8 file, gzip or not, decoding strictly.
    A last line without a final newline (a download cut off mid-line, e.g.
    an id cut from D011125 to D011) is warned about, or with
    `errors.strict` raised before that line is read."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"knowledge-base file not found: {path}")
    number = 0
    last: Optional[bytes] = None
    try:
        with _open_bytes(path) as f:
            # One line behind, so that a cut last line is known before it is read.
            for number, raw in enumerate(f, start=1):
                if last is not None:
                    yield from _decoded(number - 1, last, errors)
                last = raw
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        # Not skippable: the rest of the file is gone.
        raise KBFormatError(
            f"truncated or corrupt gzip file after line {number} ({e})", path=str(path), line=number + 1
        ) from e
    if last is None:
        return
    if not last.endswith(b"\n"):
        _unterminated(errors, number)
    yield from _decoded(number, last, errors)


def _open_bytes(path: Path) -> BinaryIO:
    """The file opened for reading bytes, decompressed when it starts with
    gzip's magic bytes (whatever its name says)."""
    with path.open("rb") as f:
        is_gzip = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if is_gzip else path.open("rb")  # type: ignore[return-value]


def _unterminated(errors: _Errors, number: int) -> None:
    """Warn (or with `errors.strict` raise) that line `number`, the last,
    has no final newline and so may be cut short."""
    problem = "no final newline: the last line may be cut short (file truncated?)"
    if errors.strict:
        raise KBFormatError(problem, path=errors.path, line=number)
    warnings.warn(f"{errors.path}, line {number}: {problem}; read as it is (strict=True or --strict makes this an error)", stacklevel=4)


def _decoded(number: int, raw: bytes, errors: _Errors) -> Iterator[Tuple[int, str]]:
    """(number, text) of one raw line, or nothing if it is not UTF-8 (reported)."""
    if number == 1 and raw.startswith(codecs.BOM_UTF8):
        # Excel and Notepad write one; left in, it becomes part
        # of the first column name or the first entity's name.
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        yield number, raw.decode("utf8")
    except UnicodeDecodeError as e:
        errors(f"not valid UTF-8 (byte {e.start}: {raw[e.start:e.start + 1]!r})", line=number)


def _finish_record(
    rec: EntityRecord, *, ids: _Ids, errors: _Errors, line: int
) -> Optional[EntityRecord]:
    rec.id = ids.clean(rec.id) if isinstance(rec.id, str) else rec.id
    if isinstance(rec.alt_ids, list):
        rec.alt_ids = [ids.clean(a) if isinstance(a, str) else a for a in rec.alt_ids]
    try:
        rec.validate()
    except KBFormatError as e:
        errors(e.reason, line=line, field=e.field)
        return None
    first = ids.seen.get(rec.id)
    if first is not None:
        errors(f"duplicate id {rec.id!r} (first on line {first})", line=line, field="id")
        return None
    ids.seen[rec.id] = line
    return rec


@_require_entities
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
    errors, ids = _Errors(path, on_error, strict), _Ids(strip_prefix, id_prefixes_to_strip)
    for number, text in _lines(path, errors):
        if not text.strip():
            continue
        rec = _jsonl_record(text, errors=errors, line=number, ignore_unknown_fields=ignore_unknown_fields)
        done = None if rec is None else _finish_record(rec, ids=ids, errors=errors, line=number)
        if done is not None:
            yield done
    errors.finish()


def _jsonl_record(text: str, *, errors: _Errors, line: int, ignore_unknown_fields: bool) -> Optional[EntityRecord]:
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


def _split(cell: str, sep: str = "|") -> List[str]:
    return [part.strip() for part in cell.split(sep) if part.strip()] if cell else []


@_require_entities
def read_csv(
    path: PathLike,
    *,
    delimiter: str = ",",
    strip_prefix: Optional[str] = None,
    id_prefixes_to_strip: Sequence[str] = (),
    on_error: str = "raise",
    strict: bool = False,
) -> Iterator[EntityRecord]:
    """Stream records from a CSV/TSV file with a header row.

    path (PathLike): The file (optionally gzip-compressed).
    delimiter (str): "," for CSV, "\\t" for TSV.
    strip_prefix (Optional[str]): Id prefix to remove.
    id_prefixes_to_strip (Sequence[str]): More prefixes to remove.
    on_error (str): "raise" or "skip".
    strict (bool): A last line without a final newline is an error, not a warning.
    YIELDS (EntityRecord): Validated records.
    """
    errors, ids = _Errors(path, on_error, strict), _Ids(strip_prefix, id_prefixes_to_strip)
    lines = _NumberedLines(path, errors)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    header = _csv_header(reader, path)
    for number, row in _csv_rows(reader, lines, errors):
        if len(row) != len(header):
            errors(f"expected {len(header)} fields, got {len(row)}", line=number)
            continue
        rec = _csv_record(dict(zip(header, row)), errors=errors, line=number)
        done = None if rec is None else _finish_record(rec, ids=ids, errors=errors, line=number)
        if done is not None:
            yield done
    errors.finish()


class _NumberedLines:
    """The file's lines for csv.reader, remembering the physical number of
    the last one read (a quoted field may span lines; skipped lines do not
    shift the count)."""

    def __init__(self, path: PathLike, errors: _Errors) -> None:
        self.path = path
        self.errors = errors
        self.last = 0

    def __iter__(self) -> Iterator[str]:
        for number, text in _lines(self.path, self.errors):
            self.last = number
            yield text


def _csv_header(reader: Iterator[List[str]], path: PathLike) -> List[str]:
    """Read and check the header row (not skippable: every row depends on it)."""
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise KBFormatError("empty file (expected a header row)", path=str(path), line=1) from None
    except csv.Error as e:
        raise KBFormatError(f"malformed header ({e})", path=str(path), line=1) from None
    for required in ("id", "name"):
        if required not in header:
            raise KBFormatError(f"header lacks column {required!r} (has {header})", path=str(path), line=1, field=required)
    unknown = [h for h in header if h not in CSV_FIELDS]
    if unknown:
        raise KBFormatError(f"unknown column(s) {unknown}; expected {list(CSV_FIELDS)}", path=str(path), line=1, field=unknown[0])
    return header


def _csv_rows(reader: Iterator[List[str]], lines: _NumberedLines, errors: _Errors) -> Iterator[Tuple[int, List[str]]]:
    """(line number, cells) of the non-blank rows; malformed ones reported."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            errors(f"malformed CSV ({e})", line=lines.last)
            continue
        if row and any(cell.strip() for cell in row):
            yield lines.last, row


def _csv_record(cells: Dict[str, str], *, errors: _Errors, line: int) -> Optional[EntityRecord]:
    """The record of one CSV row, or None (reported to `errors`)."""
    prior: Any = None
    if cells.get("prior", "").strip():
        try:
            prior = float(cells["prior"])
        except ValueError:
            errors(f"prior is not a number ({cells['prior']!r})", line=line, field="prior")
            return None
    return EntityRecord(
        id=cells["id"].strip(),
        name=cells["name"].strip(),
        aliases=_split(cells.get("aliases", "")),
        description=cells.get("description", "").strip(),
        type=cells.get("type", "").strip(),
        prior=prior,
        alt_ids=_split(cells.get("alt_ids", "")),
    )


@_require_entities
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
    errors, ids = _Errors(path, on_error, strict), _Ids(strip_prefix, id_prefixes_to_strip)
    for number, text in _lines(path, errors):
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
            id=cols[1].strip(),
            name=cols[0].strip(),
            aliases=_split(cols[7]),
            description=cols[3].strip(),
            type=entity_type,
            alt_ids=_split(cols[2]),
        )
        done = _finish_record(rec, ids=ids, errors=errors, line=number)
        if done is not None:
            yield done
    errors.finish()


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
        with _open_bytes(Path(path)) as file_:
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
