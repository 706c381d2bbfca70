"""Streaming readers for knowledge-base files, and the registered KB loaders.

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
counted in one warning at the end. Id prefixes (``strip_prefix="MESH:"`` or
``id_prefixes_to_strip=["MESH:", "OMIM:"]``) are removed from ids and
alternative ids alike.
"""
import codecs
import csv
import gzip
import json
import warnings
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from spacy.util import registry
from spacy.vocab import Vocab

from .candidates import STAGES
from .knowledge_base import LinkerKB
from .records import EntityRecord, KBFormatError

PathLike = Union[str, Path]
JSONL_FIELDS = ("id", "name", "aliases", "description", "type", "prior", "alias_priors", "alt_ids")
CSV_FIELDS = ("id", "name", "aliases", "description", "type", "prior", "alt_ids")
CTD_COLUMNS = (
    "DiseaseName", "DiseaseID", "AltDiseaseIDs", "Definition", "ParentIDs",
    "TreeNumbers", "ParentTreeNumbers", "Synonyms", "SlimMappings",
)


class _Errors:
    """Raise, or count and skip, per `on_error`."""

    def __init__(self, path: PathLike, on_error: str) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip' (got {on_error!r})")
        self.path = str(path)
        self.on_error = on_error
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


def _lines(path: PathLike, errors: _Errors) -> Iterator[Tuple[int, str]]:
    """(line number, text) of a UTF-8 file, gzip or not, decoding strictly."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"knowledge-base file not found: {path}")
    with path.open("rb") as f:
        is_gzip = f.read(2) == b"\x1f\x8b"
    number = 0
    try:
        with (gzip.open(path, "rb") if is_gzip else path.open("rb")) as f:
            for number, raw in enumerate(f, start=1):
                if number == 1 and raw.startswith(codecs.BOM_UTF8):
                    # Excel and Notepad write one; left in, it becomes part
                    # of the first column name or the first entity's name.
                    raw = raw[len(codecs.BOM_UTF8) :]
                try:
                    yield number, raw.decode("utf8")
                except UnicodeDecodeError as e:
                    errors(f"not valid UTF-8 (byte {e.start}: {raw[e.start:e.start + 1]!r})", line=number)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        # Not skippable: the rest of the file is gone.
        raise KBFormatError(
            f"truncated or corrupt gzip file after line {number} ({e})", path=str(path), line=number + 1
        ) from e


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


def read_jsonl(
    path: PathLike,
    *,
    strip_prefix: Optional[str] = None,
    id_prefixes_to_strip: Sequence[str] = (),
    on_error: str = "raise",
    ignore_unknown_fields: bool = False,
) -> Iterator[EntityRecord]:
    """Stream records from a JSONL file (schema in the module docstring).

    path (PathLike): The file (.jsonl or .jsonl.gz).
    strip_prefix (Optional[str]): Id prefix to remove, e.g. "MESH:".
    id_prefixes_to_strip (Sequence[str]): More prefixes to remove.
    on_error (str): "raise" (default) or "skip" (counted in a warning).
    ignore_unknown_fields (bool): Accept fields outside the schema.
    YIELDS (EntityRecord): Validated records.
    """
    errors, ids = _Errors(path, on_error), _Ids(strip_prefix, id_prefixes_to_strip)
    for number, text in _lines(path, errors):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            errors(f"malformed JSON ({e.msg} at column {e.colno})", line=number)
            continue
        except RecursionError:
            errors("malformed JSON (nested too deeply)", line=number)
            continue
        if not isinstance(obj, dict):
            errors(f"expected a JSON object, got {type(obj).__name__}", line=number)
            continue
        unknown = sorted(set(obj) - set(JSONL_FIELDS))
        if unknown and not ignore_unknown_fields:
            errors(f"unknown field(s) {unknown}; expected {list(JSONL_FIELDS)}", line=number, field=unknown[0])
            continue
        missing = [k for k in ("id", "name") if k not in obj]
        if missing:
            errors(f"missing required field {missing[0]!r}", line=number, field=missing[0])
            continue
        rec = EntityRecord(
            id=obj["id"],
            name=obj["name"],
            aliases=obj.get("aliases", []) if obj.get("aliases") is not None else [],
            description=obj.get("description") or "",
            type=obj.get("type") or "",
            prior=obj.get("prior"),
            alias_priors=obj.get("alias_priors") if obj.get("alias_priors") is not None else {},
            alt_ids=obj.get("alt_ids") if obj.get("alt_ids") is not None else [],
        )
        done = _finish_record(rec, ids=ids, errors=errors, line=number)
        if done is not None:
            yield done
    errors.finish()


def _split(cell: str, sep: str = "|") -> List[str]:
    return [part.strip() for part in cell.split(sep) if part.strip()] if cell else []


def read_csv(
    path: PathLike,
    *,
    delimiter: str = ",",
    strip_prefix: Optional[str] = None,
    id_prefixes_to_strip: Sequence[str] = (),
    on_error: str = "raise",
) -> Iterator[EntityRecord]:
    """Stream records from a CSV/TSV file with a header row.

    path (PathLike): The file (optionally gzip-compressed).
    delimiter (str): "," for CSV, "\\t" for TSV.
    strip_prefix (Optional[str]): Id prefix to remove.
    id_prefixes_to_strip (Sequence[str]): More prefixes to remove.
    on_error (str): "raise" or "skip".
    YIELDS (EntityRecord): Validated records.
    """
    errors, ids = _Errors(path, on_error), _Ids(strip_prefix, id_prefixes_to_strip)
    last = [0]  # physical line of the last text fed to csv (skipped lines do not shift it)

    def feed() -> Iterator[str]:
        for number, text in _lines(path, errors):
            last[0] = number
            yield text

    reader = csv.reader(feed(), delimiter=delimiter, strict=True)
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
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            errors(f"malformed CSV ({e})", line=last[0])
            continue
        number = last[0]
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            errors(f"expected {len(header)} fields, got {len(row)}", line=number)
            continue
        cells = dict(zip(header, row))
        prior: Any = None
        if cells.get("prior", "").strip():
            try:
                prior = float(cells["prior"])
            except ValueError:
                errors(f"prior is not a number ({cells['prior']!r})", line=number, field="prior")
                continue
        rec = EntityRecord(
            id=cells["id"].strip(),
            name=cells["name"].strip(),
            aliases=_split(cells.get("aliases", "")),
            description=cells.get("description", "").strip(),
            type=cells.get("type", "").strip(),
            prior=prior,
            alt_ids=_split(cells.get("alt_ids", "")),
        )
        done = _finish_record(rec, ids=ids, errors=errors, line=number)
        if done is not None:
            yield done
    errors.finish()


def read_ctd(
    path: PathLike,
    *,
    strip_prefix: Optional[str] = None,
    id_prefixes_to_strip: Sequence[str] = (),
    entity_type: str = "Disease",
    on_error: str = "raise",
) -> Iterator[EntityRecord]:
    """Stream records from CTD's MEDIC disease vocabulary.

    path (PathLike): CTD_diseases.tsv or .tsv.gz.
    strip_prefix (Optional[str]): e.g. "MESH:" so ids match BC5CDR's.
    id_prefixes_to_strip (Sequence[str]): More prefixes to remove.
    entity_type (str): The `type` given to every record.
    on_error (str): "raise" or "skip".
    YIELDS (EntityRecord): One per disease; AltDiseaseIDs become `alt_ids`,
        Definition the description, Synonyms the aliases.
    """
    errors, ids = _Errors(path, on_error), _Ids(strip_prefix, id_prefixes_to_strip)
    for number, text in _lines(path, errors):
        if text.startswith("#") or not text.strip():
            continue
        cols = text.rstrip("\r\n").split("\t")
        if len(cols) not in (len(CTD_COLUMNS), len(CTD_COLUMNS) - 1):
            errors(f"expected {len(CTD_COLUMNS)} tab-separated columns, got {len(cols)}", line=number)
            continue
        rec = EntityRecord(
            id=cols[1].strip(),
            name=cols[0].strip(),
            aliases=_split(cols[7]),
            description=cols[3].strip(),
            type=entity_type,
            alt_ids=_split(cols[2]),
        )
        if not rec.id:
            errors("missing DiseaseID", line=number, field="DiseaseID")
            continue
        if not rec.name:
            errors("missing DiseaseName", line=number, field="DiseaseName")
            continue
        done = _finish_record(rec, ids=ids, errors=errors, line=number)
        if done is not None:
            yield done
    errors.finish()


# -- registered loaders for [initialize.components.<linker>.kb_loader] ---------

KBLoader = Callable[[Vocab], LinkerKB]


def _kb_options(top_k: int, stages: Sequence[str], entity_vector_length: int) -> Dict[str, Any]:
    return {"top_k": top_k, "stages": tuple(stages), "entity_vector_length": entity_vector_length}


@registry.misc("spacy_llm_ner.load_kb_jsonl.v1")
def make_jsonl_kb_loader(
    *,
    path: str,
    strip_prefix: Optional[str] = None,
    id_prefixes_to_strip: List[str] = [],
    on_error: str = "raise",
    ignore_unknown_fields: bool = False,
    top_k: int = 10,
    stages: List[str] = list(STAGES),
    entity_vector_length: int = 0,
) -> KBLoader:
    """A kb_loader that builds a LinkerKB from a JSONL file.

    path (str): The file. Other options: see `read_jsonl` and `LinkerKB`.
    RETURNS (Callable[[Vocab], LinkerKB]): The loader.
    """

    def load(vocab: Vocab) -> LinkerKB:
        records = read_jsonl(
            path, strip_prefix=strip_prefix, id_prefixes_to_strip=id_prefixes_to_strip,
            on_error=on_error, ignore_unknown_fields=ignore_unknown_fields,
        )
        return LinkerKB.from_records(vocab, records, **_kb_options(top_k, stages, entity_vector_length))

    return load


@registry.misc("spacy_llm_ner.load_kb_csv.v1")
def make_csv_kb_loader(
    *,
    path: str,
    delimiter: str = ",",
    strip_prefix: Optional[str] = None,
    id_prefixes_to_strip: List[str] = [],
    on_error: str = "raise",
    top_k: int = 10,
    stages: List[str] = list(STAGES),
    entity_vector_length: int = 0,
) -> KBLoader:
    """A kb_loader that builds a LinkerKB from a CSV/TSV file.

    path (str): The file. delimiter (str): "," or "\\t". Other options: see
        `read_csv` and `LinkerKB`.
    RETURNS (Callable[[Vocab], LinkerKB]): The loader.
    """

    def load(vocab: Vocab) -> LinkerKB:
        records = read_csv(
            path, delimiter=delimiter, strip_prefix=strip_prefix, id_prefixes_to_strip=id_prefixes_to_strip,
            on_error=on_error,
        )
        return LinkerKB.from_records(vocab, records, **_kb_options(top_k, stages, entity_vector_length))

    return load


@registry.misc("spacy_llm_ner.load_kb_ctd.v1")
def make_ctd_kb_loader(
    *,
    path: str,
    strip_prefix: Optional[str] = "MESH:",
    id_prefixes_to_strip: List[str] = [],
    entity_type: str = "Disease",
    on_error: str = "raise",
    top_k: int = 10,
    stages: List[str] = list(STAGES),
    entity_vector_length: int = 0,
) -> KBLoader:
    """A kb_loader that builds a LinkerKB from CTD's disease vocabulary.

    path (str): CTD_diseases.tsv[.gz]. strip_prefix (Optional[str]):
        default "MESH:" (BC5CDR's ids carry none). Other options: see
        `read_ctd` and `LinkerKB`.
    RETURNS (Callable[[Vocab], LinkerKB]): The loader.
    """

    def load(vocab: Vocab) -> LinkerKB:
        records = read_ctd(
            path, strip_prefix=strip_prefix, id_prefixes_to_strip=id_prefixes_to_strip,
            entity_type=entity_type, on_error=on_error,
        )
        return LinkerKB.from_records(vocab, records, **_kb_options(top_k, stages, entity_vector_length))

    return load


@registry.misc("spacy_llm_ner.load_kb_disk.v1")
def make_disk_kb_loader(*, path: str, mmap: bool = True) -> KBLoader:
    """A kb_loader that reads a LinkerKB saved with `to_disk`.

    path (str): The folder.
    mmap (bool): Memory-map it.
    RETURNS (Callable[[Vocab], LinkerKB]): The loader.
    """

    def load(vocab: Vocab) -> LinkerKB:
        return LinkerKB.load(path, vocab, mmap=mmap)

    return load


KB_FORMATS = ("auto", "jsonl", "csv", "tsv", "ctd")


def read_records(path: PathLike, *, fmt: str = "auto", strip_prefix: Optional[str] = None) -> Iterator[EntityRecord]:
    """Stream validated records from a KB file of any supported format.

    path (PathLike): JSONL, CSV, TSV or the CTD diseases TSV (.gz too).
    fmt (str): One of KB_FORMATS; "auto" decides by the file name (a name
        containing "ctd" is the CTD vocabulary).
    strip_prefix (Optional[str]): Id prefix to strip, e.g. "MESH:".
    RETURNS (Iterator[EntityRecord]): The records.
    """
    if fmt not in KB_FORMATS:
        raise ValueError(f"Unknown KB format {fmt!r}: expected one of {', '.join(KB_FORMATS)}.")
    name = Path(path).name.lower().removesuffix(".gz")
    if fmt == "auto":
        if "ctd" in name:
            fmt = "ctd"
        else:
            fmt = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv"}.get(Path(name).suffix, "jsonl")
    if fmt == "jsonl":
        return read_jsonl(path, strip_prefix=strip_prefix)
    if fmt == "ctd":
        return read_ctd(path, strip_prefix=strip_prefix)
    return read_csv(path, delimiter="\t" if fmt == "tsv" else ",", strip_prefix=strip_prefix)


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
) -> KBLoader:
    """A kb_loader for any KB the package reads: a LinkerKB folder (from
    `build-kb` or `to_disk`; memory-mapped, its own cascade settings) or a
    JSONL / CSV / TSV / CTD file, by name or `format`.

    path (str): The folder or file.
    format (str): For files: "auto", "jsonl", "csv", "tsv" or "ctd".
    strip_prefix (Optional[str]): For files: id prefix to strip.
    top_k, stages, entity_vector_length: For files: see `LinkerKB`.
    mmap (bool): For folders: memory-map the KB.
    RETURNS (Callable[[Vocab], LinkerKB]): The loader.
    """

    def load(vocab: Vocab) -> LinkerKB:
        if Path(path).is_dir():
            return LinkerKB.load(path, vocab, mmap=mmap)
        records = read_records(path, fmt=format, strip_prefix=strip_prefix)
        return LinkerKB.from_records(vocab, records, **_kb_options(top_k, stages, entity_vector_length))

    return load


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
