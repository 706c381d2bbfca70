"""CSV / TSV knowledge-base files: a header row naming the columns, or, for a
file without one, the columns given by the caller (``columns=["id", "name",
"description"]``, ``build-kb --columns id,name,description``).

Columns: ``id``, ``name`` (required), ``aliases`` and ``alt_ids``
(``|``-separated), ``description``, ``type``, ``prior``. A header is not
guessed from the content: a first line that names none of the columns is an
error that shows the line and the fix, since taking it for data (or data
for a header) would silently lose or invent an entity.
"""
import csv
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from .reading import Errors, Ids, PathLike, finish_file, finish_record, numbered_lines, require_entities, split_ids, split_names
from .records import EntityRecord, KBFormatError

CSV_FIELDS = ("id", "name", "aliases", "description", "type", "prior", "alt_ids")
# The columns suggested for a headerless file of n fields, in this order.
_SUGGESTED = ("id", "name", "description", "type", "aliases", "alt_ids", "prior")


@require_entities
def read_csv(
    path: PathLike,
    *,
    delimiter: str = ",",
    columns: Optional[Sequence[str]] = None,
    strip_prefix: Optional[str] = None,
    id_prefixes_to_strip: Sequence[str] = (),
    on_error: str = "raise",
    strict: bool = False,
) -> Iterator[EntityRecord]:
    """Stream records from a CSV/TSV file.

    path (PathLike): The file (optionally gzip-compressed).
    delimiter (str): "," for CSV, "\\t" for TSV.
    columns (Optional[Sequence[str]]): The columns of a file without a header
        row, in order (e.g. ["id", "name", "description"]); its first line is
        then data. None: the first line is the header.
    strip_prefix (Optional[str]): Id prefix to remove.
    id_prefixes_to_strip (Sequence[str]): More prefixes to remove.
    on_error (str): "raise" or "skip".
    strict (bool): A last line without a final newline is an error, not a warning.
    YIELDS (EntityRecord): Validated records.
    """
    errors, ids = Errors(path, on_error, strict), Ids(strip_prefix, id_prefixes_to_strip)
    given = None if columns is None else check_columns(columns, source="columns")
    lines = _NumberedLines(path, errors)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    rows = _csv_rows(reader, lines, errors)
    header = given if given is not None else _csv_header(rows, lines, path)
    first = True
    for number, row in rows:
        if first and given is not None and _is_header(row):
            raise KBFormatError(
                f"the file has a header row ({row}) but columns were given: drop --columns (columns=...)",
                path=str(path), line=number,
            )
        first = False
        if len(row) != len(header):
            errors(f"expected {len(header)} fields ({', '.join(header)}), got {len(row)}", line=number)
            continue
        rec = _csv_record(dict(zip(header, row)), errors=errors, line=number)
        done = None if rec is None else finish_record(rec, ids=ids, errors=errors, line=number)
        if done is not None:
            yield done
    finish_file(path, ids=ids, errors=errors)


def check_columns(columns: Sequence[str], *, source: str, path: str = "") -> List[str]:
    """Check a column list: `id` and `name` present, every name known, none twice.

    columns (Sequence[str]): The column names. source (str): Where they come
        from, for the message ("header", "columns"). path (str): The file, if any.
    RETURNS (List[str]): The names, stripped.
    RAISES (KBFormatError): Naming what is wrong.
    """
    names = [c.strip() for c in columns]
    line = 1 if source == "header" else None
    for required in ("id", "name"):
        if required not in names:
            raise KBFormatError(f"{source} lacks column {required!r} (has {names})", path=path, line=line, field=required)
    unknown = [c for c in names if c not in CSV_FIELDS]
    if unknown:
        raise KBFormatError(f"unknown column(s) {unknown}; expected {list(CSV_FIELDS)}", path=path, line=line, field=unknown[0])
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise KBFormatError(f"column(s) {twice} given twice", path=path, line=line, field=twice[0])
    return names


def _is_header(row: List[str]) -> bool:
    """Whether a row names only known columns, among them `id` (a header)."""
    cells = [c.strip().lower() for c in row]
    return "id" in cells and all(c in CSV_FIELDS for c in cells)


class _NumberedLines:
    """The file's lines for csv.reader, remembering the physical number and
    text of the last one read (a quoted field may span lines; skipped lines
    do not shift the count)."""

    def __init__(self, path: PathLike, errors: Errors) -> None:
        self.path = path
        self.errors = errors
        self.last = 0
        self.text = ""

    def __iter__(self) -> Iterator[str]:
        for number, text in numbered_lines(self.path, self.errors):
            self.last, self.text = number, text
            yield text


def _csv_header(rows: Iterator[Tuple[int, List[str]]], lines: _NumberedLines, path: PathLike) -> List[str]:
    """Read and check the header row (not skippable: every row depends on it)."""
    try:
        _, header = next(rows)
    except StopIteration:
        raise KBFormatError("empty file (expected a header row)", path=str(path), line=1) from None
    # "ID", "Name": spreadsheets capitalise; the names are not case-sensitive.
    cells = [h.strip().lower() for h in header]
    if not any(c in CSV_FIELDS for c in cells):
        raise _no_header(path, lines.text.rstrip("\r\n"), len(cells))
    return check_columns(cells, source="header", path=str(path))


def _no_header(path: PathLike, first: str, n_fields: int) -> KBFormatError:
    """The error for a first line that names no column: it shows the line and
    the option that reads a headerless file."""
    suggested = list(_SUGGESTED[: max(2, min(n_fields, len(_SUGGESTED)))])
    return KBFormatError(
        f"no header row: the first line {first[:200]!r} names none of the columns {list(CSV_FIELDS)}; "
        f"for a file without a header give its columns in order, e.g. --columns {','.join(suggested)} "
        f"(API and configs: columns={suggested})",
        path=str(path), line=1,
    )


def _csv_rows(reader: Iterator[List[str]], lines: _NumberedLines, errors: Errors) -> Iterator[Tuple[int, List[str]]]:
    """(line number, cells) of the non-blank rows; malformed ones reported."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            if lines.last <= 1:
                # The header (or first row): every row depends on it.
                raise KBFormatError(f"malformed header ({e})", path=str(lines.path), line=1) from None
            errors(f"malformed CSV ({e})", line=lines.last)
            continue
        if row and any(cell.strip() for cell in row):
            yield lines.last, row


def _csv_record(cells: Dict[str, str], *, errors: Errors, line: int) -> Optional[EntityRecord]:
    """The record of one CSV row, or None (reported to `errors`)."""
    prior: Any = None
    if cells.get("prior", "").strip():
        try:
            prior = float(cells["prior"])
        except ValueError:
            errors(f"prior is not a number ({cells['prior']!r})", line=line, field="prior")
            return None
    return EntityRecord(
        id=cells["id"],  # stripped (and counted) by `finish_record`
        name=cells["name"].strip(),
        aliases=split_names(cells.get("aliases", "")),
        description=cells.get("description", "").strip(),
        type=cells.get("type", "").strip(),
        prior=prior,
        alt_ids=split_ids(cells.get("alt_ids", "")),
    )
