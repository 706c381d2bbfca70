"""Corpus readers: NER corpora (CoNLL IOB, PubTator, JSONL) as spaCy ``Doc``
objects, and their conversion to spaCy's binary ``DocBin`` format
(``.spacy``). The `convert` command (`cli/convert.py`) is a thin wrapper.

The readers stream ``Doc`` objects::

    from spacy_llm_ner.training.corpora import convert, read_pubtator
    stats = convert("train.PubTator.txt", "train.spacy", fmt="auto")

Nothing is dropped silently: whatever a reader cannot keep (overlapping
mentions, rejected Prodigy answers, relation lines) is counted in a
``ConvertStats`` and shown by the ``convert`` command. Malformed input raises
``ValueError`` naming the file, the line number and the field.
"""
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import spacy
from spacy.language import Language
from spacy.pipeline import Sentencizer
from spacy.tokens import Doc, DocBin, Span
from spacy.training import biluo_tags_to_spans, iob_to_biluo
from spacy.vocab import Vocab


FORMATS = ("auto", "conll", "pubtator", "jsonl")
DOCSTART = "-DOCSTART-"
# Accepted tag prefixes and their IOB equivalent (BIOES "E"/"S" = BILUO "L"/"U").
_TAG_PREFIXES = {"B": "B", "I": "I", "L": "I", "U": "B", "E": "I", "S": "B"}
_BILUO_ONLY = {"L", "U", "E", "S"}
_PUBTATOR_TEXT_RE = re.compile(r"^([^\t|]+)\|([ta])\|(.*)$")

PathLike = Union[str, Path]
# A mention as read from a file: (start_char, end_char, label, kb_id, line number, field name).
Mention = Tuple[int, int, str, str, int, str]


@dataclass
class ConvertStats:
    """What a conversion produced and what it could not keep.

    docs (int): Number of Docs written.
    sents (int): Number of sentences (CoNLL: as in the file; otherwise as set
        by the rule-based sentencizer).
    tokens (int): Number of tokens.
    entities (Counter): Number of entities per label.
    with_kb_id (int): Number of entities carrying a non-empty ``kb_id_``.
    skipped (Counter): Things read but not kept, by reason.
    repaired (Counter): Things kept after a change, by reason.
    """

    docs: int = 0
    sents: int = 0
    tokens: int = 0
    entities: Counter = field(default_factory=Counter)
    with_kb_id: int = 0
    skipped: Counter = field(default_factory=Counter)
    repaired: Counter = field(default_factory=Counter)

    def add_doc(self, doc: Doc) -> None:
        """Count one Doc's tokens, sentences and entities.

        doc (Doc): The converted Doc.
        """
        self.docs += 1
        self.tokens += len(doc)
        if doc.has_annotation("SENT_START"):
            self.sents += sum(1 for _ in doc.sents)
        for ent in doc.ents:
            self.entities[ent.label_] += 1
            if ent.kb_id_:
                self.with_kb_id += 1

    @property
    def n_entities(self) -> int:
        return sum(self.entities.values())


def _error(path: PathLike, line_no: int, field_name: str, problem: str) -> ValueError:
    return ValueError(f"{path}, line {line_no}, {field_name}: {problem}")


# --------------------------------------------------------------------------
# CoNLL IOB / BILUO
# --------------------------------------------------------------------------


def _split_conll_line(line: str) -> List[str]:
    # Tab-separated when the line has a tab (token TAB tag), else whitespace.
    return line.split("\t") if "\t" in line else line.split()


def _check_tag(tag: str, path: PathLike, line_no: int, column: int) -> str:
    if tag == "O":
        return tag
    prefix, sep, label = tag.partition("-")
    field_name = f"column {column} (tag {tag!r})"
    if not sep or prefix not in _TAG_PREFIXES:
        raise _error(
            path, line_no, field_name,
            "unknown tag prefix: expected O or B-, I-, L-, U-, E-, S- followed by a label",
        )
    if not label.strip():
        raise _error(path, line_no, field_name, "tag has no label")
    return tag


def _repair_tags(tags: Sequence[str]) -> Tuple[List[str], bool]:
    """Map IOB1, IOB2, BILUO or BIOES tags onto valid BILUO tags.

    The tags are mapped to IOB first (B/U/S -> B, I/L/E -> I) and then to
    BILUO with spaCy's ``iob_to_biluo``, which starts a new entity at an I- tag
    that does not continue an entity of the same label (IOB1 semantics).

    tags (Sequence[str]): Checked tags of one sentence.
    RETURNS (Tuple[List[str], bool]): The BILUO tags, and whether BILUO/BIOES
        input was invalid and had to be changed.
    """
    iob = ["O" if t == "O" else f"{_TAG_PREFIXES[t[0]]}{t[1:]}" for t in tags]
    biluo = iob_to_biluo(iob)
    was_biluo = any(t[0] in _BILUO_ONLY for t in tags if t != "O")
    if not was_biluo:
        return biluo, False
    given = [{"E": "L", "S": "U"}.get(t[0], t[0]) + t[1:] if t != "O" else t for t in tags]
    return biluo, biluo != given


def _has_docstart(path: Path) -> bool:
    with path.open(encoding="utf8") as file_:
        return any(line.lstrip().startswith(DOCSTART) for line in file_)


def read_conll(
    path: PathLike,
    *,
    vocab: Vocab,
    n_sents: int = 10,
    stats: Optional[ConvertStats] = None,
) -> Iterator[Doc]:
    """Read a CoNLL-style IOB/BILUO file.

    Each token line holds the token in the first and the tag in the last
    column: 2 columns (token TAB tag, as WNUT-17) or more (CoNLL-2003:
    token POS chunk tag, whitespace-separated). The first token line fixes
    the number of columns. Blank lines, or lines holding only whitespace,
    separate sentences; ``-DOCSTART-`` lines start a new document. Files
    without ``-DOCSTART-`` are grouped into Docs of ``n_sents`` sentences.
    IOB1, IOB2, BILUO and BIOES tags are accepted; invalid sequences are
    repaired as spaCy's ``iob_to_biluo`` does (an I- tag that continues no
    entity starts one). Sentence starts are set on the tokens.

    path (PathLike): The file.
    vocab (Vocab): The vocab of the Docs.
    n_sents (int): Sentences per Doc when the file has no -DOCSTART-.
    stats (Optional[ConvertStats]): Updated with repaired sequences.
    YIELDS (Doc): One Doc per document or group of sentences.
    """
    path = Path(path)
    if n_sents < 1:
        raise ValueError(f"n_sents must be at least 1, got {n_sents}")
    by_document = _has_docstart(path)
    n_cols: Optional[int] = None
    # Sentences of the current Doc: lists of (word, tag).
    sents: List[List[Tuple[str, str]]] = []
    sent: List[Tuple[str, str]] = []

    def make_doc() -> Doc:
        words = [w for s in sents for w, _ in s]
        spaces = [True] * len(words)
        spaces[-1] = False
        doc = Doc(vocab, words=words, spaces=spaces)
        tags: List[str] = []
        for s in sents:
            biluo, repaired = _repair_tags([t for _, t in s])
            if repaired and stats is not None:
                stats.repaired["invalid BILUO sequences repaired"] += 1
            tags.extend(biluo)
        doc.ents = biluo_tags_to_spans(doc, tags)
        i = 0
        for s in sents:
            for j in range(len(s)):
                doc[i + j].is_sent_start = j == 0
            i += len(s)
        return doc

    with path.open(encoding="utf8") as file_:
        for line_no, line in enumerate(file_, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                if sent:
                    sents.append(sent)
                    sent = []
                    if not by_document and len(sents) >= n_sents:
                        yield make_doc()
                        sents = []
                continue
            fields = _split_conll_line(line.strip())
            if fields[0] == DOCSTART:
                if sent:
                    sents.append(sent)
                    sent = []
                if sents:
                    yield make_doc()
                    sents = []
                continue
            if n_cols is None:
                if len(fields) < 2:
                    raise _error(
                        path, line_no, "columns",
                        f"expected token and tag columns, found {len(fields)} column",
                    )
                n_cols = len(fields)
            elif len(fields) != n_cols:
                raise _error(
                    path, line_no, "columns",
                    f"expected {n_cols} columns like the first token line, found {len(fields)}",
                )
            word, tag = fields[0], fields[-1]
            if not word:
                raise _error(path, line_no, "column 1 (token)", "empty token")
            sent.append((word, _check_tag(tag, path, line_no, n_cols)))
    if sent:
        sents.append(sent)
    if sents:
        yield make_doc()


# --------------------------------------------------------------------------
# Character-offset formats (PubTator, JSONL)
# --------------------------------------------------------------------------


def make_doc_with_boundaries(nlp: Language, text: str, boundaries: Iterable[int]) -> Doc:
    """Tokenize ``text`` with ``nlp.tokenizer`` so that a token boundary falls
    on every offset in ``boundaries``: a token that an offset falls inside is
    cut there and each part is tokenized again (e.g. "PAN)-induced" with a
    mention "PAN" becomes "PAN", ")", "-induced"). Other tokens are as the
    tokenizer makes them, and the Doc's text is ``text``.

    nlp (Language): Provides the tokenizer and vocab.
    text (str): The text.
    boundaries (Iterable[int]): Character offsets that must be token boundaries.
    RETURNS (Doc): The Doc.
    """
    return _cut_tokens(nlp, text, boundaries)[0]


def _cut_tokens(nlp: Language, text: str, boundaries: Iterable[int]) -> Tuple[Doc, int]:
    # RETURNS: the Doc and the number of tokenizer tokens that were cut.
    doc = nlp.tokenizer(text)
    cuts = sorted({b for b in boundaries if 0 < b < len(text)})
    n_cut = 0
    if not cuts:
        return doc, n_cut
    words: List[str] = []
    spaces: List[bool] = []
    i = 0
    for token in doc:
        start, end = token.idx, token.idx + len(token.text)
        while i < len(cuts) and cuts[i] <= start:
            i += 1
        inside = []
        while i < len(cuts) and cuts[i] < end:
            inside.append(cuts[i])
            i += 1
        if not inside:
            words.append(token.text)
            spaces.append(bool(token.whitespace_))
            continue
        n_cut += 1
        edges = [start] + inside + [end]
        for a, b in zip(edges, edges[1:]):
            part = text[a:b]
            sub_words = [part] if part.isspace() else [t.text for t in nlp.tokenizer(part)]
            if "".join(sub_words) != part:  # a part never holds whitespace, but be safe
                sub_words = [part]
            words.extend(sub_words)
            spaces.extend([False] * len(sub_words))
        spaces[-1] = bool(token.whitespace_)
    new_doc = Doc(nlp.vocab, words=words, spaces=spaces)
    if new_doc.text != text:  # pragma: no cover - guards the joining logic
        raise RuntimeError("Retokenization changed the text")
    return new_doc, n_cut


def _select_non_overlapping(mentions: Sequence[Mention]) -> Tuple[List[Mention], List[Mention]]:
    """Keep the longest of overlapping mentions (the first in the file when
    equally long).

    RETURNS (Tuple[List[Mention], List[Mention]]): The kept mentions in text
        order, and the dropped ones.
    """
    order = sorted(range(len(mentions)), key=lambda i: (-(mentions[i][1] - mentions[i][0]), i))
    taken = [False] * (max((m[1] for m in mentions), default=0) + 1)
    kept: List[Mention] = []
    dropped: List[Mention] = []
    for i in order:
        start, end = mentions[i][0], mentions[i][1]
        if any(taken[start:end]):
            dropped.append(mentions[i])
        else:
            taken[start:end] = [True] * (end - start)
            kept.append(mentions[i])
    kept.sort(key=lambda m: (m[0], m[1]))
    return kept, dropped


def _doc_with_mentions(
    nlp: Language,
    text: str,
    mentions: Sequence[Mention],
    path: PathLike,
    *,
    sentencizer: Optional[Sentencizer],
    stats: Optional[ConvertStats],
) -> Doc:
    """Build a Doc whose entities are the mentions: overlapping mentions are
    resolved (and counted), and tokens are cut at mention boundaries that
    fall inside them (counted)."""
    kept, dropped = _select_non_overlapping(mentions)
    if stats is not None and dropped:
        stats.skipped["overlapping mentions (kept the longer)"] += len(dropped)
    boundaries = [b for m in mentions for b in m[:2]]
    doc, n_cut = _cut_tokens(nlp, text, boundaries)
    if stats is not None and n_cut:
        stats.repaired["tokens cut at mention boundaries"] += n_cut
    spans = _char_spans(doc, kept)
    if spans is None:
        for start, end, _, _, line_no, field_name in kept:
            if doc.char_span(start, end) is None:
                raise _error(
                    path, line_no, field_name,
                    f"mention {text[start:end]!r} ({start}-{end}) cannot be aligned to tokens "
                    "(leading or trailing whitespace?)",
                )
    doc.ents = spans
    if sentencizer is not None:
        doc = sentencizer(doc)
        for ent in doc.ents:  # no sentence starts inside entities
            for token in ent[1:]:
                token.is_sent_start = False
    return doc


def _char_spans(doc: Doc, mentions: Sequence[Mention]) -> Optional[List[Span]]:
    spans = []
    for start, end, label, kb_id, _, _ in mentions:
        span = doc.char_span(start, end, label=label, kb_id=kb_id, alignment_mode="strict")
        if span is None:
            return None
        spans.append(span)
    return spans


def _parse_offset(value: str, path: PathLike, line_no: int, field_name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise _error(path, line_no, field_name, f"expected an integer offset, got {value!r}") from None


def _check_range(start: int, end: int, text: str, path: PathLike, line_no: int, field_name: str) -> None:
    if not 0 <= start < end <= len(text):
        raise _error(
            path, line_no, field_name,
            f"span {start}-{end} is empty or outside the text (length {len(text)})",
        )


def read_pubtator(
    path: PathLike,
    *,
    nlp: Language,
    sentences: bool = True,
    stats: Optional[ConvertStats] = None,
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
    is kept (the first if equally long) and the others are counted.

    path (PathLike): The file.
    nlp (Language): Provides the tokenizer and vocab.
    sentences (bool): Set sentence starts with a rule-based sentencizer
        (never inside an entity).
    stats (Optional[ConvertStats]): Updated with skipped lines and dropped
        overlapping mentions.
    YIELDS (Doc): One Doc per document.
    """
    path = Path(path)
    sentencizer = Sentencizer() if sentences else None
    pmid: Optional[str] = None
    title: Optional[str] = None
    abstract: Optional[str] = None
    raw_mentions: List[Tuple[List[str], int]] = []
    start_line = 0

    def flush() -> Optional[Doc]:
        nonlocal pmid, title, abstract, raw_mentions
        if pmid is None:
            return None
        if title is None:
            raise _error(path, start_line, "title", f"document {pmid} has no 'PMID|t|' title line")
        text = title if abstract is None else f"{title} {abstract}"
        mentions: List[Mention] = []
        for fields, line_no in raw_mentions:
            start = _parse_offset(fields[1], path, line_no, "column 2 (start)")
            end = _parse_offset(fields[2], path, line_no, "column 3 (end)")
            _check_range(start, end, text, path, line_no, "columns 2-3 (start, end)")
            if text[start:end] != fields[3]:
                raise _error(
                    path, line_no, "column 4 (mention)",
                    f"{fields[3]!r} does not match the text at {start}-{end}: {text[start:end]!r}",
                )
            if not fields[4]:
                raise _error(path, line_no, "column 5 (type)", "empty entity type")
            mentions.append((start, end, fields[4], fields[5], line_no, "mention"))
        doc = _doc_with_mentions(
            nlp, text, mentions, path, sentencizer=sentencizer, stats=stats
        )
        pmid, title, abstract, raw_mentions = None, None, None, []
        return doc

    with path.open(encoding="utf8") as file_:
        for line_no, line in enumerate(file_, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                doc = flush()
                if doc is not None:
                    yield doc
                continue
            match = _PUBTATOR_TEXT_RE.match(line)
            if match:
                line_pmid, kind, content = match.groups()
                if kind == "t" and (title is not None or pmid not in (None, line_pmid)):
                    doc = flush()  # a new document without a blank line before it
                    if doc is not None:
                        yield doc
                if pmid is None:
                    pmid, start_line = line_pmid, line_no
                elif line_pmid != pmid:
                    raise _error(path, line_no, "PMID", f"expected {pmid}, got {line_pmid}")
                if kind == "t":
                    title = content
                elif abstract is not None:
                    raise _error(path, line_no, "abstract", f"second abstract for document {pmid}")
                else:
                    abstract = content
                continue
            fields = line.split("\t")
            if pmid is None:
                raise _error(
                    path, line_no, "line", "annotation line outside a document (no 'PMID|t|' line before it)"
                )
            if fields[0] != pmid:
                raise _error(path, line_no, "column 1 (PMID)", f"expected {pmid}, got {fields[0]!r}")
            if 2 <= len(fields) < 6 and not fields[1].strip().isdigit():
                # Relation line (PMID TAB CID TAB id TAB id).
                if stats is not None:
                    stats.skipped[f"relation lines ({fields[1]})"] += 1
                continue
            if len(fields) < 6:
                raise _error(
                    path, line_no, "columns",
                    "expected at least 6 tab-separated columns (PMID, start, end, mention, type, id), "
                    f"found {len(fields)}",
                )
            raw_mentions.append((fields, line_no))
    doc = flush()
    if doc is not None:
        yield doc


def _jsonl_mentions(record: Dict[str, Any], text: str, path: PathLike, line_no: int) -> List[Mention]:
    has_spans = record.get("spans") is not None
    has_entities = record.get("entities") is not None
    if has_spans and has_entities:
        raise _error(path, line_no, "spans/entities", "record has both 'spans' and 'entities'")
    key = "spans" if has_spans else "entities"
    items = record.get(key) or []
    if not isinstance(items, list):
        raise _error(path, line_no, key, f"expected a list, got {type(items).__name__}")
    # Prodigy entity-linking records: the chosen option id in "accept".
    accept = record.get("accept")
    linked = None
    if isinstance(accept, list) and len(accept) == 1 and isinstance(accept[0], str):
        linked = accept[0]
    mentions: List[Mention] = []
    for i, item in enumerate(items):
        field_name = f"{key}[{i}]"
        if isinstance(item, dict):
            start, end, label = item.get("start"), item.get("end"), item.get("label")
            kb_id = item.get("kb_id")
            span_text = item.get("text")
        elif isinstance(item, (list, tuple)) and len(item) in (3, 4):
            start, end, label = item[0], item[1], item[2]
            kb_id = item[3] if len(item) == 4 else None
            span_text = None
        else:
            raise _error(
                path, line_no, field_name,
                "expected an object with start, end, label or a list [start, end, label(, kb_id)]",
            )
        for name, value in (("start", start), ("end", end)):
            if not isinstance(value, int) or isinstance(value, bool):
                problem = f"expected an integer, got {value!r}"
                raise _error(path, line_no, f"{field_name}.{name}", problem)
        if not isinstance(label, str) or not label:
            problem = f"expected a non-empty string, got {label!r}"
            raise _error(path, line_no, f"{field_name}.label", problem)
        if kb_id is None:
            kb_id = linked if linked is not None and len(items) == 1 else ""
        if not isinstance(kb_id, str):
            raise _error(path, line_no, f"{field_name}.kb_id", f"expected a string, got {kb_id!r}")
        _check_range(start, end, text, path, line_no, field_name)
        if span_text is not None and span_text != text[start:end]:
            raise _error(
                path, line_no, f"{field_name}.text",
                f"{span_text!r} does not match the text at {start}-{end}: {text[start:end]!r}",
            )
        mentions.append((start, end, label, kb_id, line_no, field_name))
    return mentions


def read_jsonl(
    path: PathLike,
    *,
    nlp: Language,
    sentences: bool = True,
    stats: Optional[ConvertStats] = None,
) -> Iterator[Doc]:
    """Read character-offset annotations, one JSON object per line.

    Two schemas are accepted: spaCy/Prodigy ``{"text": ..., "spans":
    [{"start": int, "end": int, "label": str, "kb_id"?: str}]}`` and
    ``{"text": ..., "entities": [[start, end, label(, kb_id)], ...]}``.
    Prodigy "tokens" are ignored; records whose "answer" is not "accept"
    are skipped and counted; a Prodigy entity-linking record with one span
    and one id in "accept" gives that id as the span's kb_id. Texts are
    tokenized with ``nlp.tokenizer``, and tokens are cut where a span starts
    or ends inside them (see ``make_doc_with_boundaries``). Of overlapping spans the longer
    is kept and the others are counted.

    path (PathLike): The file.
    nlp (Language): Provides the tokenizer and vocab.
    sentences (bool): Set sentence starts with a rule-based sentencizer.
    stats (Optional[ConvertStats]): Updated with skipped records, dropped
        overlapping spans and retokenized texts.
    YIELDS (Doc): One Doc per accepted record.
    """
    path = Path(path)
    sentencizer = Sentencizer() if sentences else None
    with path.open(encoding="utf8") as file_:
        for line_no, line in enumerate(file_, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise _error(path, line_no, "JSON", f"invalid JSON: {err}") from None
            if not isinstance(record, dict):
                raise _error(path, line_no, "JSON", f"expected an object, got {type(record).__name__}")
            answer = record.get("answer", "accept")
            if answer != "accept":
                if stats is not None:
                    stats.skipped[f"records with answer {answer!r}"] += 1
                continue
            text = record.get("text")
            if not isinstance(text, str):
                raise _error(path, line_no, "text", "missing or not a string")
            mentions = _jsonl_mentions(record, text, path, line_no)
            yield _doc_with_mentions(
                nlp, text, mentions, path, sentencizer=sentencizer, stats=stats
            )


# --------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------


def detect_format(path: PathLike) -> str:
    """Pick a format from the file: ``.jsonl`` -> "jsonl"; a first non-blank
    line ``PMID|t|title`` -> "pubtator"; anything else -> "conll".

    path (PathLike): The file.
    RETURNS (str): "jsonl", "pubtator" or "conll".
    """
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        return "jsonl"
    with path.open(encoding="utf8") as file_:
        for line in file_:
            if line.strip():
                return "pubtator" if _PUBTATOR_TEXT_RE.match(line.rstrip("\r\n")) else "conll"
    return "conll"


def read_docs(
    input_path: PathLike,
    *,
    nlp: Language,
    fmt: str = "auto",
    n_sents: int = 10,
    stats: Optional[ConvertStats] = None,
) -> Iterator[Doc]:
    """Read Docs from a file in any supported format.

    input_path (PathLike): The file.
    nlp (Language): Provides the tokenizer and vocab.
    fmt (str): "auto", "conll", "pubtator" or "jsonl".
    n_sents (int): CoNLL sentences per Doc when there is no -DOCSTART-.
    stats (Optional[ConvertStats]): Updated with what is skipped or repaired.
    YIELDS (Doc): The Docs.
    """
    if fmt not in FORMATS:
        raise ValueError(f"Unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(input_path)
    if fmt == "conll":
        return read_conll(input_path, vocab=nlp.vocab, n_sents=n_sents, stats=stats)
    if fmt == "pubtator":
        return read_pubtator(input_path, nlp=nlp, stats=stats)
    return read_jsonl(input_path, nlp=nlp, stats=stats)


def convert(
    input_path: PathLike,
    output_path: PathLike,
    *,
    fmt: str = "auto",
    lang: str = "en",
    n_sents: int = 10,
) -> ConvertStats:
    """Convert an annotated file to a ``.spacy`` DocBin.

    input_path (PathLike): CoNLL, PubTator or JSONL file.
    output_path (PathLike): The DocBin file to write (parents are created).
    fmt (str): "auto", "conll", "pubtator" or "jsonl".
    lang (str): Language code of the blank pipeline used for tokenization.
    n_sents (int): CoNLL sentences per Doc when there is no -DOCSTART-.
    RETURNS (ConvertStats): Counts of what was written, skipped and repaired.
    """
    nlp = spacy.blank(lang)
    stats = ConvertStats()
    doc_bin = DocBin(attrs=["ORTH", "SPACY", "SENT_START", "ENT_IOB", "ENT_TYPE", "ENT_KB_ID"])
    for doc in read_docs(input_path, nlp=nlp, fmt=fmt, n_sents=n_sents, stats=stats):
        doc_bin.add(doc)
        stats.add_doc(doc)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    doc_bin.to_disk(output_path)
    return stats
