"""The output folder of `annotate`: a Parquet file per part (and with
--docbin a `.spacy` file), the errors of each part, and a manifest of the
finished parts.

Nothing lost, nothing twice: each file is written to a temporary name and
renamed, so a part's files exist whole or not at all, and the same part
written twice (a retried task) replaces itself. A part is finished when its
line is in `manifest.jsonl`, which only the driver appends to, after the
part's files are in place.
"""
import json
import os
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Set

from spacy.tokens import Doc, DocBin

from .inputs import require_pyarrow

MANIFEST = "manifest.jsonl"
PARTS = "parts"
ERRORS = "errors"
DOCBINS = "docbin"


class PartStats(NamedTuple):
    """What a worker reports for a finished part.

    key (str): The part's key.
    docs (int): Docs processed.
    words (int): Their tokens.
    entities (int): Their entities.
    links (int): Entities linked to a KB id (not NIL).
    errors (int): Docs that went to the errors.
    worker (str): Where it ran (host:pid).
    seconds (float): The worker's time on it (reading, annotating, writing).
    """

    key: str
    docs: int
    words: int
    entities: int
    links: int
    errors: int
    worker: str
    seconds: float = 0.0


def row_schema() -> Any:
    """The Arrow schema of the output rows.

    RETURNS (pyarrow.Schema): id, meta, n_words, entities.
    """
    pa = require_pyarrow()
    candidate = pa.struct([("kb_id", pa.string()), ("score", pa.float32())])
    entity = pa.struct([
        ("start", pa.int32()),
        ("end", pa.int32()),
        ("label", pa.string()),
        ("score", pa.float32()),
        ("kb_id", pa.string()),
        ("link_score", pa.float32()),
        ("candidates", pa.list_(candidate)),
    ])
    return pa.schema(
        [("id", pa.string()), ("meta", pa.string()), ("n_words", pa.int32()), ("entities", pa.list_(entity))]
    )


def _atomic(path: Path, write: Any) -> None:
    # A unique temporary name: two tries of one part never share one.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_part(
    output: Path, key: str, rows: List[Dict[str, Any]], errors: List[Dict[str, str]], docs: List[Doc], *, docbin: bool
) -> None:
    """Write a part's rows, errors and (optionally) docs, each atomically.

    output (Path): The output folder.
    key (str): The part's key.
    rows (List[Dict[str, Any]]): Its rows.
    errors (List[Dict[str, str]]): Its errors.
    docs (List[Doc]): Its docs.
    docbin (bool): Also write a .spacy file.
    """
    pa = require_pyarrow()
    table = pa.Table.from_pylist(rows, schema=row_schema())
    lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors)
    _atomic(output / ERRORS / f"{key}.jsonl", lambda p: p.write_text(lines, encoding="utf8"))
    if docbin:
        data = DocBin(docs=docs, store_user_data=True).to_bytes()
        _atomic(output / DOCBINS / f"{key}.spacy", lambda p: p.write_bytes(data))
    # The Parquet file last: the part's files are complete when it exists.
    _atomic(output / PARTS / f"{key}.parquet", lambda p: pa.parquet.write_table(table, str(p)))


def finished_keys(output: Path) -> Set[str]:
    """The parts the manifest lists whose Parquet file exists.

    output (Path): The output folder.
    RETURNS (Set[str]): Their keys.
    """
    return {e["key"] for e in read_manifest(output) if (output / PARTS / f"{e['key']}.parquet").exists()}


def read_manifest(output: Path) -> List[Dict[str, Any]]:
    """The manifest's entries; a line cut short by a crash is ignored.

    output (Path): The output folder.
    RETURNS (List[Dict[str, Any]]): One per finished part.
    """
    path = output / MANIFEST
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


class Manifest:
    """The driver's append-only record of finished parts."""

    def __init__(self, output: Path) -> None:
        self.path = Path(output) / MANIFEST
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A line cut short by a crash is closed, so the next one parses.
        if self.path.exists() and self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
            with self.path.open("a", encoding="utf8") as file:
                file.write("\n")

    def add(self, stats: PartStats) -> None:
        """Record a finished part (flushed and synced: it survives a crash).

        stats (PartStats): The part's figures.
        """
        with self.path.open("a", encoding="utf8") as file:
            file.write(json.dumps(stats._asdict()) + "\n")
            file.flush()
            os.fsync(file.fileno())


def output_ids(output: Path, keys: Iterable[str]) -> Iterator[str]:
    """Every id in the given parts' rows and errors.

    output (Path): The output folder.
    keys (Iterable[str]): The parts.
    YIELDS (str): Ids, a doc's id once per time it is in the output.
    """
    pq = require_pyarrow().parquet
    for key in keys:
        yield from pq.read_table(str(output / PARTS / f"{key}.parquet"), columns=["id"]).column("id").to_pylist()
        errors = output / ERRORS / f"{key}.jsonl"
        if errors.exists():
            for line in errors.read_text(encoding="utf8").splitlines():
                yield json.loads(line)["id"]


def collect_errors(output: Path, keys: Iterable[str]) -> int:
    """Gather the parts' errors into one `errors.jsonl` (atomically).

    output (Path): The output folder.
    keys (Iterable[str]): The parts, in input order.
    RETURNS (int): The number of errors.
    """
    lines: List[str] = []
    for key in keys:
        path = output / ERRORS / f"{key}.jsonl"
        if path.exists():
            lines.extend(path.read_text(encoding="utf8").splitlines())
    text = "".join(line + "\n" for line in lines)
    _atomic(output / "errors.jsonl", lambda p: p.write_text(text, encoding="utf8"))
    return len(lines)
