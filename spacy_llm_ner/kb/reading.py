"""What every knowledge-base file reader shares (`readers.py`,
`csv_reader.py`): numbered, strictly decoded lines of a plain or gzip file,
the error policy (raise, or skip and count), id cleaning (stray whitespace
and prefixes) and the final per-record checks."""
import codecs
import functools
import gzip
import warnings
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from .records import EntityRecord, KBFormatError

PathLike = Union[str, Path]


class Errors:
    """Raise, or count and skip, per `on_error`.

    path (PathLike): The file, named in every message.
    on_error (str): "raise" or "skip".
    strict (bool): A last line without a final newline is an error.
    """

    def __init__(self, path: PathLike, on_error: str, strict: bool = False) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip' (got {on_error!r})")
        self.path = str(path)
        self.on_error = on_error
        self.strict = strict
        self.skipped = 0
        self.shown: List[str] = []

    def __call__(self, message: str, *, line: Optional[int], field: str = "") -> None:
        """Report one bad record: raise, or count it (the first 5 are shown).

        message (str): What is wrong. line (Optional[int]): Its line.
        field (str): Its field, if known.
        """
        err = KBFormatError(message, path=self.path, line=line, field=field)
        if self.on_error == "raise":
            raise err
        self.skipped += 1
        if len(self.shown) < 5:
            self.shown.append(str(err))

    def finish(self) -> None:
        """Warn once with the number of skipped records and the first ones."""
        if self.skipped:
            more = f" (first {len(self.shown)} shown)" if self.skipped > len(self.shown) else ""
            warnings.warn(f"{self.path}: skipped {self.skipped} bad record(s){more}: " + "; ".join(self.shown), stacklevel=3)


class Ids:
    """Id cleaning (stray whitespace, prefixes) and duplicate detection.

    strip_prefix (Optional[str]): A prefix to remove, e.g. "MESH:".
    id_prefixes_to_strip (Sequence[str]): More prefixes to remove.
    """

    def __init__(self, strip_prefix: Optional[str], id_prefixes_to_strip: Sequence[str]) -> None:
        self.prefixes = tuple(p for p in [strip_prefix, *id_prefixes_to_strip] if p)
        self.seen: Dict[str, int] = {}
        self.n_stripped = 0
        self.first_stripped: Optional[Tuple[int, str]] = None

    def clean(self, entity_id: str, *, line: int) -> str:
        """The id without surrounding whitespace and without a listed prefix.
        Whitespace is counted: " D012345 " would never equal a gold id, so it
        is a repair the user should see, not a silent change.

        entity_id (str): The id as read. line (int): Its line, for the report.
        RETURNS (str): The cleaned id.
        """
        stripped = entity_id.strip()
        if stripped != entity_id:
            self.n_stripped += 1
            if self.first_stripped is None:
                self.first_stripped = (line, entity_id)
        for prefix in self.prefixes:
            if stripped.startswith(prefix):
                return stripped[len(prefix) :]
        return stripped

    def finish(self, path: PathLike) -> None:
        """Warn once with the number of ids stripped of whitespace and the first.

        path (PathLike): The file, named in the warning.
        """
        if self.first_stripped is not None:
            line, raw = self.first_stripped
            warnings.warn(
                f"{path}: stripped stray whitespace around {self.n_stripped} id(s) (first: line {line}, {raw!r})",
                stacklevel=3,
            )


def require_entities(reader: Callable[..., Iterator[EntityRecord]]) -> Callable[..., Iterator[EntityRecord]]:
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


def numbered_lines(path: PathLike, errors: Errors) -> Iterator[Tuple[int, str]]:
    """(line number, text) of a UTF-8 file, gzip or not, decoding strictly.
    A last line without a final newline (a download cut off mid-line, e.g.
    an id cut from D011125 to D011) is warned about, or with
    `errors.strict` raised before that line is read.

    path (PathLike): The file. errors (Errors): Where bad lines go.
    YIELDS (Tuple[int, str]): 1-based line number and text (with its newline).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"knowledge-base file not found: {path}")
    number = 0
    last: Optional[bytes] = None
    try:
        with open_bytes(path) as f:
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


def open_bytes(path: Path) -> BinaryIO:
    """The file opened for reading bytes, decompressed when it starts with
    gzip's magic bytes (whatever its name says).

    path (Path): The file.
    RETURNS (BinaryIO): The open file.
    """
    with path.open("rb") as f:
        is_gzip = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if is_gzip else path.open("rb")  # type: ignore[return-value]


def _unterminated(errors: Errors, number: int) -> None:
    """Warn (or with `errors.strict` raise) that line `number`, the last,
    has no final newline and so may be cut short."""
    problem = "no final newline: the last line may be cut short (file truncated?)"
    if errors.strict:
        raise KBFormatError(problem, path=errors.path, line=number)
    warnings.warn(f"{errors.path}, line {number}: {problem}; read as it is (strict=True or --strict makes this an error)", stacklevel=4)


def _decoded(number: int, raw: bytes, errors: Errors) -> Iterator[Tuple[int, str]]:
    """(number, text) of one raw line, or nothing if it is not UTF-8 (reported)."""
    if number == 1 and raw.startswith(codecs.BOM_UTF8):
        # Excel and Notepad write one; left in, it becomes part
        # of the first column name or the first entity's name.
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        yield number, raw.decode("utf8")
    except UnicodeDecodeError as e:
        errors(f"not valid UTF-8 (byte {e.start}: {raw[e.start:e.start + 1]!r})", line=number)


def split_ids(cell: str, sep: str = "|") -> List[str]:
    """The non-blank parts of a `sep`-separated cell, as written: ids keep
    their whitespace so that `Ids.clean` strips and counts it.

    cell (str): The cell. sep (str): The separator.
    RETURNS (List[str]): The parts.
    """
    return [part for part in cell.split(sep) if part.strip()] if cell else []


def split_names(cell: str, sep: str = "|") -> List[str]:
    """The non-blank, stripped parts of a `sep`-separated cell of names.

    cell (str): The cell. sep (str): The separator.
    RETURNS (List[str]): The parts.
    """
    return [part.strip() for part in cell.split(sep) if part.strip()] if cell else []


def finish_record(rec: EntityRecord, *, ids: Ids, errors: Errors, line: int) -> Optional[EntityRecord]:
    """Clean the ids of a parsed record, validate it and reject a duplicate id.

    rec (EntityRecord): The record as read. ids (Ids): Id cleaning and the
        ids seen. errors (Errors): Where a bad record goes. line (int): Its line.
    RETURNS (Optional[EntityRecord]): The record, or None (reported).
    """
    rec.id = ids.clean(rec.id, line=line) if isinstance(rec.id, str) else rec.id
    if isinstance(rec.alt_ids, list):
        rec.alt_ids = [ids.clean(a, line=line) if isinstance(a, str) else a for a in rec.alt_ids]
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


def finish_file(path: PathLike, *, ids: Ids, errors: Errors) -> None:
    """The end-of-file reports: ids stripped of whitespace, records skipped.

    path (PathLike): The file. ids (Ids): Its id cleaning. errors (Errors): Its errors.
    """
    ids.finish(path)
    errors.finish()
