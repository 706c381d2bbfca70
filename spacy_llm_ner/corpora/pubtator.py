"""PubTator files (e.g. BioCreative V CDR) as spaCy Docs."""
import re
import warnings
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from spacy.pipeline import Sentencizer
from spacy.tokens import Doc

from .common import ConvertStats, Mention, PathLike, clean_link_id, line_error, require_docs, unterminated_last_line
from .offsets import check_range, doc_with_mentions
from .tokenization import Tokenizing

# A title or abstract line: PMID|t|text or PMID|a|text.
PUBTATOR_TEXT_RE = re.compile(r"^([^\t|]+)\|([ta])\|(.*)$")
# What to do with a mention line whose offsets, text or type are wrong:
# "skip" is "skip-doc" (see `read_pubtator`).
ON_ERROR = ("raise", "skip", "skip-doc", "skip-mention")
DOC_SKIPPED = "documents with a bad mention (on_error=skip)"
MENTION_SKIPPED = "bad mentions (on_error=skip-mention; their documents kept)"
WHITESPACE_MENTION = "mentions with stray whitespace"


def _parse_offset(value: str, path: PathLike, line_no: int, field_name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise line_error(path, line_no, field_name, f"expected an integer offset, got {value!r}") from None


def _same_but_whitespace(in_text: str, in_column: str) -> bool:
    """Whether the mention column and the text at its offsets differ only by
    surrounding whitespace (and are not blank)."""
    return bool(in_column.strip()) and in_text.strip() == in_column.strip()


def _trimmed(text: str, start: int, end: int) -> Tuple[int, int]:
    """The offsets without the whitespace around text[start:end]."""
    span = text[start:end]
    return start + len(span) - len(span.lstrip()), end - (len(span) - len(span.rstrip()))


def _mention(fields: List[str], line_no: int, text: str, path: PathLike, pending: ConvertStats) -> Mention:
    """One mention line, checked against the document text.

    fields (List[str]): Its tab-separated columns. line_no (int): Its line.
    text (str): The document text. path (PathLike): The file, for errors.
    pending (ConvertStats): Repairs, counted here until the document is kept.
    RETURNS (Mention): The mention (trimmed if only whitespace differs).
    RAISES (ValueError): Naming the file, line and column of the problem.
    """
    start = _parse_offset(fields[1], path, line_no, "column 2 (start)")
    end = _parse_offset(fields[2], path, line_no, "column 3 (end)")
    check_range(start, end, text, path, line_no, "columns 2-3 (start, end)")
    if text[start:end] != fields[3] and _same_but_whitespace(text[start:end], fields[3]):
        # Stray spaces around the mention column (or the offsets)
        # lose nothing: keep the mention, trimmed to the text.
        start, end = _trimmed(text, start, end)
        pending.repair(WHITESPACE_MENTION, f"{path}, line {line_no}, column 4 (mention): {fields[3]!r}")
    elif text[start:end] != fields[3]:
        raise line_error(
            path, line_no, "column 4 (mention)",
            f"{fields[3]!r} does not match the text at {start}-{end}: {text[start:end]!r}",
        )
    if not fields[4]:
        raise line_error(path, line_no, "column 5 (type)", "empty entity type")
    kb_id = clean_link_id(fields[5], where=f"{path}, line {line_no}, column 6 (id)", stats=pending)
    return (start, end, fields[4], kb_id, line_no, "mention")


def _document_mentions(
    raw_mentions: List[Tuple[List[str], int]],
    text: str,
    path: PathLike,
    *,
    on_error: str,
    stats: Optional[ConvertStats],
    where: Tuple[str, int],
) -> Optional[List[Mention]]:
    """The mentions of one document, with bad ones raised or skipped per
    `on_error`, each skipped one reported in a warning.

    raw_mentions (List[Tuple[List[str], int]]): (columns, line) of its mention lines.
    text (str): The document text. path (PathLike): The file.
    on_error (str): One of ON_ERROR.
    stats (Optional[ConvertStats]): Updated with repairs and skips.
    where (Tuple[str, int]): The document's PMID and first line, for reports.
    RETURNS (Optional[List[Mention]]): The mentions, or None when the whole
        document is skipped.
    """
    pending = ConvertStats()
    mentions: List[Mention] = []
    problems: List[str] = []
    for fields, line_no in raw_mentions:
        try:
            mentions.append(_mention(fields, line_no, text, path, pending))
        except ValueError as err:
            if on_error == "raise":
                raise
            problems.append(str(err))
    if problems and on_error in ("skip", "skip-doc"):
        # The whole document: kept without the bad mention, its entity would
        # be trained on as not an entity (a false negative).
        for problem in problems:
            warnings.warn(f"{problem}; document {where[0]} (line {where[1]}) skipped (on_error={on_error!r})", stacklevel=4)
        if stats is not None:
            stats.skipped[DOC_SKIPPED] += 1
        return None
    for problem in problems:
        warnings.warn(f"{problem}; mention skipped (on_error={on_error!r})", stacklevel=4)
    if stats is not None:
        if problems:
            stats.skipped[MENTION_SKIPPED] += len(problems)
        for reason, count in pending.repaired.items():
            stats.repaired[reason] += count
            stats.examples.setdefault(reason, pending.examples[reason])
    return mentions


@require_docs
def read_pubtator(
    path: PathLike,
    *,
    nlp: Tokenizing,
    sentences: bool = True,
    stats: Optional[ConvertStats] = None,
    strict: bool = False,
    keep_duplicates: bool = False,
    on_error: str = "raise",
) -> Iterator[Doc]:
    """Read a PubTator file (e.g. BioCreative V CDR).

    Documents are ``PMID|t|title`` and ``PMID|a|abstract`` lines followed by
    mention lines ``PMID TAB start TAB end TAB mention TAB type TAB id[TAB
    extra...]``; relation lines (``PMID TAB CID TAB ...``) are skipped and
    counted; a blank line ends a document. Offsets index ``title + " " +
    abstract``. The text is tokenized with ``nlp.tokenizer``, and tokens
    are cut where a mention starts or ends inside them (see
    ``make_doc_with_boundaries``), so each mention becomes an exact
    entity: label = type column, ``kb_id_`` = id column as given (composite
    ``D1|D2`` and ``-1`` kept). Of overlapping mentions the longer
    is kept (the first if equally long) and the others are counted. A
    mention column that differs from the text only by surrounding whitespace
    is repaired (trimmed) and counted; ids with stray whitespace are
    stripped and counted. Any other problem of a mention line (offsets not
    integers or outside the text, a mention column that does not match the
    text, an empty type) is an error, or with `on_error` skipped, each one
    reported in a warning naming file, line and field, and counted. Problems
    of the file's structure (too few columns, a PMID that changes inside a
    document, no title) are always errors.

    path (PathLike): The file.
    nlp (Union[Language, Tokenization]): Provides the tokenizer and vocab.
    sentences (bool): Set sentence starts with a rule-based sentencizer
        (never inside an entity).
    stats (Optional[ConvertStats]): Updated with skipped lines and dropped
        overlapping mentions.
    strict (bool): A last line without a final newline (a cut file) is an
        error; otherwise a warning naming the file and line.
    keep_duplicates (bool): Keep every document whose PMID was seen before;
        by default only the first is kept (the others are counted in
        `stats` and named in a warning either way).
    on_error (str): A bad mention line: "raise" (default); "skip" or
        "skip-doc": leave out its whole document (kept without the mention,
        the entity would be taught as not an entity); "skip-mention": leave
        out the mention only, keeping the document (for data where recall of
        the annotation matters less than keeping every text).
    YIELDS (Doc): One Doc per document.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(map(repr, ON_ERROR))} (got {on_error!r})")
    path = Path(path)
    sentencizer = Sentencizer() if sentences else None
    pmid: Optional[str] = None
    title: Optional[str] = None
    abstract: Optional[str] = None
    raw_mentions: List[Tuple[List[str], int]] = []
    start_line = 0
    first_line: Dict[str, int] = {}  # PMID -> line of its first document
    duplicates: List[str] = []
    n_kept, n_skipped = 0, 0  # documents (skipped: for a bad mention)

    def flush() -> Optional[Doc]:
        nonlocal pmid, title, abstract, raw_mentions, n_kept, n_skipped
        if pmid is None:
            return None
        if pmid in first_line:
            # A concatenated or re-exported file: the same document twice
            # would be trained on twice, or leak between splits.
            duplicates.append(f"{pmid} (line {start_line}, first on line {first_line[pmid]})")
            if not keep_duplicates:
                if stats is not None:
                    stats.skipped["duplicate documents (same PMID, first kept)"] += 1
                pmid, title, abstract, raw_mentions = None, None, None, []
                return None
        first_line.setdefault(pmid, start_line)
        if title is None:
            raise line_error(path, start_line, "title", f"document {pmid} has no 'PMID|t|' title line")
        text = title if abstract is None else f"{title} {abstract}"
        mentions = _document_mentions(raw_mentions, text, path, on_error=on_error, stats=stats, where=(pmid, start_line))
        if mentions is None:
            # Not "seen": a later, correct copy of the document is then kept.
            if first_line[pmid] == start_line:
                del first_line[pmid]
            n_skipped += 1
            pmid, title, abstract, raw_mentions = None, None, None, []
            return None
        n_kept += 1
        doc = doc_with_mentions(
            nlp, text, mentions, path, sentencizer=sentencizer, stats=stats
        )
        pmid, title, abstract, raw_mentions = None, None, None, []
        return doc

    line_no, terminated = 0, True
    with path.open(encoding="utf8") as file_:
        for line_no, line in enumerate(file_, start=1):
            terminated = line.endswith("\n")
            line = line.rstrip("\r\n")
            if not line.strip():
                doc = flush()
                if doc is not None:
                    yield doc
                continue
            match = PUBTATOR_TEXT_RE.match(line)
            if match:
                line_pmid, kind, content = match.groups()
                if kind == "t" and (title is not None or pmid not in (None, line_pmid)):
                    doc = flush()  # a new document without a blank line before it
                    if doc is not None:
                        yield doc
                if pmid is None:
                    pmid, start_line = line_pmid, line_no
                elif line_pmid != pmid:
                    raise line_error(path, line_no, "PMID", f"expected {pmid}, got {line_pmid}")
                if kind == "t":
                    title = content
                elif abstract is not None:
                    raise line_error(path, line_no, "abstract", f"second abstract for document {pmid}")
                else:
                    abstract = content
                continue
            fields = line.split("\t")
            if pmid is None:
                raise line_error(
                    path, line_no, "line", "annotation line outside a document (no 'PMID|t|' line before it)"
                )
            if fields[0] != pmid:
                raise line_error(path, line_no, "column 1 (PMID)", f"expected {pmid}, got {fields[0]!r}")
            if 2 <= len(fields) < 6 and not fields[1].strip().isdigit():
                # Relation line (PMID TAB CID TAB id TAB id).
                if stats is not None:
                    stats.skipped[f"relation lines ({fields[1]})"] += 1
                continue
            if len(fields) < 6:
                raise line_error(
                    path, line_no, "columns",
                    "expected at least 6 tab-separated columns (PMID, start, end, mention, type, id), "
                    f"found {len(fields)}",
                )
            raw_mentions.append((fields, line_no))
    if not terminated:
        # Before the last document is built, so that strict mode keeps no part of it.
        unterminated_last_line(path, line_no, strict=strict)
    doc = flush()
    if doc is not None:
        yield doc
    if n_skipped and not n_kept:
        # Not the empty-file error: the file had documents, all left out.
        raise ValueError(f"{path}: no documents left: all {n_skipped} had a bad mention and were skipped (on_error={on_error!r})")
    if duplicates:
        _warn_duplicates(path, duplicates, kept=keep_duplicates)


def _warn_duplicates(path: PathLike, duplicates: List[str], *, kept: bool) -> None:
    """One warning naming the documents whose PMID was seen before.

    path (PathLike): The file. duplicates (List[str]): "PMID (line ...)" each.
    kept (bool): Whether they were kept.
    """
    shown = ", ".join(duplicates[:10]) + (f", ... ({len(duplicates) - 10} more)" if len(duplicates) > 10 else "")
    what = "kept (keep_duplicates)" if kept else "left out, the first of each kept"
    warnings.warn(f"{path}: {len(duplicates)} duplicate document(s) {what}: {shown}", stacklevel=3)
