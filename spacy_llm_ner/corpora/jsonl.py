"""Character-offset annotations, one JSON object per line (spaCy/Prodigy
"spans" or [start, end, label] "entities"), as spaCy Docs."""
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from spacy.pipeline import Sentencizer
from spacy.tokens import Doc

from .common import ConvertStats, Mention, PathLike, clean_link_id, line_error, require_docs, unterminated_last_line
from .offsets import check_range, doc_with_mentions
from .tokenization import Tokenizing


def _jsonl_mentions(
    record: Dict[str, Any], text: str, path: PathLike, line_no: int, stats: Optional[ConvertStats] = None
) -> List[Mention]:
    has_spans = record.get("spans") is not None
    has_entities = record.get("entities") is not None
    if has_spans and has_entities:
        raise line_error(path, line_no, "spans/entities", "record has both 'spans' and 'entities'")
    key = "spans" if has_spans else "entities"
    items = record.get(key) or []
    if not isinstance(items, list):
        raise line_error(path, line_no, key, f"expected a list, got {type(items).__name__}")
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
            raise line_error(
                path, line_no, field_name,
                "expected an object with start, end, label or a list [start, end, label(, kb_id)]",
            )
        for name, value in (("start", start), ("end", end)):
            if not isinstance(value, int) or isinstance(value, bool):
                problem = f"expected an integer, got {value!r}"
                raise line_error(path, line_no, f"{field_name}.{name}", problem)
        if not isinstance(label, str) or not label:
            problem = f"expected a non-empty string, got {label!r}"
            raise line_error(path, line_no, f"{field_name}.label", problem)
        if kb_id is None:
            kb_id = linked if linked is not None and len(items) == 1 else ""
        if not isinstance(kb_id, str):
            raise line_error(path, line_no, f"{field_name}.kb_id", f"expected a string, got {kb_id!r}")
        kb_id = clean_link_id(kb_id, where=f"{path}, line {line_no}, {field_name}.kb_id", stats=stats)
        check_range(start, end, text, path, line_no, field_name)
        if span_text is not None and span_text != text[start:end]:
            raise line_error(
                path, line_no, f"{field_name}.text",
                f"{span_text!r} does not match the text at {start}-{end}: {text[start:end]!r}",
            )
        mentions.append((start, end, label, kb_id, line_no, field_name))
    return mentions


@require_docs
def read_jsonl(
    path: PathLike,
    *,
    nlp: Tokenizing,
    sentences: bool = True,
    stats: Optional[ConvertStats] = None,
    strict: bool = False,
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
    nlp (Union[Language, Tokenization]): Provides the tokenizer and vocab.
    sentences (bool): Set sentence starts with a rule-based sentencizer.
    stats (Optional[ConvertStats]): Updated with skipped records, dropped
        overlapping spans, retokenized texts and link ids stripped of
        whitespace.
    strict (bool): A last line without a final newline (a cut file) is an
        error; otherwise a warning naming the file and line.
    YIELDS (Doc): One Doc per accepted record.
    """
    path = Path(path)
    sentencizer = Sentencizer() if sentences else None
    with path.open(encoding="utf8") as file_:
        for line_no, line in enumerate(file_, start=1):
            if not line.endswith("\n"):
                # Only the last line can lack one: report it before it is used.
                unterminated_last_line(path, line_no, strict=strict)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise line_error(path, line_no, "JSON", f"invalid JSON: {err}") from None
            if not isinstance(record, dict):
                raise line_error(path, line_no, "JSON", f"expected an object, got {type(record).__name__}")
            answer = record.get("answer", "accept")
            if answer != "accept":
                if stats is not None:
                    stats.skipped[f"records with answer {answer!r}"] += 1
                continue
            text = record.get("text")
            if not isinstance(text, str):
                raise line_error(path, line_no, "text", "missing or not a string")
            mentions = _jsonl_mentions(record, text, path, line_no, stats)
            yield doc_with_mentions(
                nlp, text, mentions, path, sentencizer=sentencizer, stats=stats
            )
