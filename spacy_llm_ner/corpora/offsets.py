"""Docs from text with character-offset mentions (PubTator, JSONL): tokens
cut at mention boundaries, overlapping mentions resolved and counted."""
from typing import Iterable, List, Optional, Sequence, Tuple

from spacy.pipeline import Sentencizer
from spacy.tokens import Doc, Span

from .common import ConvertStats, Mention, PathLike, line_error
from .tokenization import Tokenizing


def make_doc_with_boundaries(nlp: Tokenizing, text: str, boundaries: Iterable[int]) -> Doc:
    """Tokenize ``text`` with ``nlp.tokenizer`` so that a token boundary falls
    on every offset in ``boundaries``: a token that an offset falls inside is
    cut there and each part is tokenized again (e.g. "PAN)-induced" with a
    mention "PAN" becomes "PAN", ")", "-induced"). Other tokens are as the
    tokenizer makes them, and the Doc's text is ``text``.

    nlp (Union[Language, Tokenization]): Provides the tokenizer and vocab.
    text (str): The text.
    boundaries (Iterable[int]): Character offsets that must be token boundaries.
    RETURNS (Doc): The Doc.
    """
    return _cut_tokens(nlp, text, boundaries)[0]


def _cut_tokens(nlp: Tokenizing, text: str, boundaries: Iterable[int]) -> Tuple[Doc, int]:
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


def doc_with_mentions(
    nlp: Tokenizing,
    text: str,
    mentions: Sequence[Mention],
    path: PathLike,
    *,
    sentencizer: Optional[Sentencizer],
    stats: Optional[ConvertStats],
) -> Doc:
    """Build a Doc whose entities are the mentions: overlapping mentions are
    resolved (and counted), and tokens are cut at mention boundaries that
    fall inside them (counted).

    nlp (Union[Language, Tokenization]): Provides the tokenizer and vocab.
    text (str): The document text.
    mentions (Sequence[Mention]): Its mentions, checked against the text.
    path (PathLike): The file, for errors.
    sentencizer (Optional[Sentencizer]): Sets sentence starts (never inside
        an entity); None: no sentence starts.
    stats (Optional[ConvertStats]): Updated with dropped mentions and cut
        tokens.
    RETURNS (Doc): The Doc.
    RAISES (ValueError): Naming the line and field of a mention that cannot
        be aligned to tokens.
    """
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
                raise line_error(
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


def check_range(start: int, end: int, text: str, path: PathLike, line_no: int, field_name: str) -> None:
    """Raise if a mention's offsets are empty or fall outside the text.

    start (int): Start character offset.
    end (int): End character offset.
    text (str): The document text.
    path (PathLike): The file, for the error.
    line_no (int): The line, for the error.
    field_name (str): The field, for the error.
    RAISES (ValueError): Naming the file, line and field.
    """
    if not 0 <= start < end <= len(text):
        raise line_error(
            path, line_no, field_name,
            f"span {start}-{end} is empty or outside the text (length {len(text)})",
        )
