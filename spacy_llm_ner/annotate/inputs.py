"""The input side of `annotate`: find the shards, check them before any work
starts, split them into parts and read a part's records with stable ids.

A shard is one input file: `.txt` (a doc per line), `.jsonl` (an object per
line with `text`, an optional `id`, any other fields kept as metadata) or
`.parquet` (a `text` column, an optional `id` column, the other columns kept as
metadata). Where a record has no id it gets `name:line` (1-based line, or row
for Parquet), the name being the shard's path relative to the input root, so
the same input always gives the same ids.
"""
import glob
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

SUFFIXES = (".txt", ".jsonl", ".parquet")


class Shard(NamedTuple):
    """One input file.

    path (str): Its path.
    name (str): Its path relative to the input root (used in ids and output names).
    n_records (int): Its number of records (lines or rows).
    """

    path: str
    name: str
    n_records: int


class Part(NamedTuple):
    """A range of a shard's records: the unit of work and of output.

    shard (Shard): The shard.
    start (int): The first record (0-based).
    stop (int): One past the last record.
    """

    shard: Shard
    start: int
    stop: int

    @property
    def key(self) -> str:
        """The part's name in the output and the manifest."""
        safe = self.shard.name.replace("/", "__")
        return f"{safe}.{self.start:09d}-{self.stop:09d}"


class Record(NamedTuple):
    """One input doc.

    id (str): Its id (given, or `name:line`).
    text (Optional[str]): Its text; None when it could not be read.
    meta (Dict[str, Any]): Its other fields.
    problem (Optional[str]): Why it cannot be processed, or None.
    """

    id: str
    text: Optional[str]
    meta: Dict[str, Any]
    problem: Optional[str]


def find_shards(input_path: str) -> List[Shard]:
    """The shards of an INPUT: a file, a folder (searched recursively) or a glob.

    input_path (str): The INPUT argument.
    RETURNS (List[Shard]): The shards, sorted by name, each checked.
    RAISES (ValueError): If nothing is found, or a shard is unreadable or of
        an unknown kind; the message names the file.
    """
    path = Path(input_path)
    if path.is_file():
        root, files = path.parent, [path]
    elif path.is_dir():
        root, files = path, sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    else:
        files = sorted(Path(p) for p in glob.glob(input_path, recursive=True) if Path(p).is_file())
        root = _glob_root(input_path)
    if not files:
        raise ValueError(f"No input found at {input_path} (expected {', '.join(SUFFIXES)} files, a folder or a glob)")
    return [check_shard(f, name=_name(f, root)) for f in files]


def _glob_root(pattern: str) -> Path:
    # The folder before the first part with a wildcard: names are relative to it.
    parts = Path(pattern).parts
    fixed = parts[: next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts))]
    return Path(*fixed) if fixed else Path(".")


def _name(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def check_shard(path: Path, *, name: str) -> Shard:
    """Check that a file is a readable shard and count its records.

    path (Path): The file.
    name (str): Its name in ids.
    RETURNS (Shard): The shard.
    RAISES (ValueError): If its kind is unknown or it cannot be read, naming it.
    """
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{path}: unknown input kind '{path.suffix}' (expected one of {', '.join(SUFFIXES)})")
    try:
        if path.suffix == ".parquet":
            columns, n = _parquet_shape(path)
        else:
            columns, n = ["text"], _count_lines(path)
    except Exception as err:  # what pyarrow or the OS says, with the file named
        raise ValueError(f"{path}: cannot be read as {path.suffix} ({err})") from err
    if "text" not in columns:
        raise ValueError(f"{path}: has no 'text' column (columns: {', '.join(columns)})")
    return Shard(str(path), name, n)


def _count_lines(path: Path) -> int:
    n, last = 0, b"\n"
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            n += block.count(b"\n")
            last = block[-1:]
    # A last line without a final newline is a line too.
    return n + (last != b"\n")


def _parquet_shape(path: Path) -> Tuple[List[str], int]:
    meta = require_pyarrow().parquet.ParquetFile(str(path))
    return list(meta.schema_arrow.names), meta.metadata.num_rows


def require_pyarrow() -> Any:
    """Import pyarrow (with parquet), or say which extra installs it.

    RETURNS (module): pyarrow, with pyarrow.parquet loaded.
    RAISES (ImportError): If it is not installed.
    """
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as err:
        raise ImportError("annotate needs pyarrow: pip install 'spacy-llm-ner[annotate]'") from err
    return pyarrow


def plan_parts(shards: List[Shard], *, part_size: int) -> List[Part]:
    """Split shards into parts of at most part_size records.

    shards (List[Shard]): The shards.
    part_size (int): Records per part.
    RETURNS (List[Part]): The parts, in input order (empty shards have none).
    """
    return [
        Part(shard, start, min(start + part_size, shard.n_records))
        for shard in shards
        for start in range(0, shard.n_records, part_size)
    ]


def read_part(part: Part, *, max_chars: int) -> List[Record]:
    """The records of a part.

    part (Part): The part.
    max_chars (int): A longer text is a problem record.
    RETURNS (List[Record]): One per line or row of the range, in order.
    """
    suffix = Path(part.shard.path).suffix
    if suffix == ".parquet":
        rows = _parquet_rows(part)
    else:
        rows = _line_rows(part, as_json=suffix == ".jsonl")
    return [_record(part.shard.name, part.start + i + 1, *row, max_chars=max_chars) for i, row in enumerate(rows)]


def _line_rows(part: Part, *, as_json: bool) -> Iterator[Tuple[Optional[Dict[str, Any]], Optional[str]]]:
    with open(part.shard.path, "rb") as file:
        for i, line in enumerate(file):
            if i < part.start:
                continue
            if i >= part.stop:
                break
            yield _parse_line(line.rstrip(b"\r\n"), as_json=as_json)


def _parse_line(line: bytes, *, as_json: bool) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    # (fields, problem): a bad line becomes a problem record, not a failed job.
    try:
        text = line.decode("utf8")
    except UnicodeDecodeError as err:
        return None, f"undecodable: {err}"
    if not as_json:
        return {"text": text}, None
    try:
        fields = json.loads(text) if text.strip() else {"text": ""}
    except json.JSONDecodeError as err:
        return None, f"undecodable: invalid JSON ({err})"
    if not isinstance(fields, dict):
        return None, "undecodable: the line is not a JSON object"
    return fields, None


def _parquet_rows(part: Part) -> Iterator[Tuple[Optional[Dict[str, Any]], Optional[str]]]:
    shard = require_pyarrow().parquet.ParquetFile(part.shard.path)
    # Only the row groups that hold the part's rows are read.
    groups, first, row = [], None, 0
    for g in range(shard.num_row_groups):
        n = shard.metadata.row_group(g).num_rows
        if row < part.stop and row + n > part.start:
            groups.append(g)
            first = row if first is None else first
        row += n
    table = shard.read_row_groups(groups).slice(part.start - (first or 0), part.stop - part.start)
    for fields in table.to_pylist():
        yield fields, None


def _record(
    name: str, line: int, fields: Optional[Dict[str, Any]], problem: Optional[str], *, max_chars: int
) -> Record:
    fields = dict(fields or {})
    given = fields.pop("id", None)
    doc_id = str(given) if given not in (None, "") else f"{name}:{line}"
    text = fields.pop("text", None)
    if problem is None:
        problem = _text_problem(text, max_chars=max_chars)
    return Record(doc_id, text if problem is None else None, fields, problem)


def _text_problem(text: Any, *, max_chars: int) -> Optional[str]:
    if text is None:
        return "no text"
    if not isinstance(text, str):
        return f"text is not a string ({type(text).__name__})"
    if not text.strip():
        return "empty"
    if len(text) > max_chars:
        return f"too long: {len(text):,} characters (max_chars {max_chars:,})"
    return None
