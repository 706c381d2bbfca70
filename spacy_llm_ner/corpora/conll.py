"""CoNLL-style IOB/BILUO files (CoNLL-2003, WNUT-17) as spaCy Docs."""
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from spacy.tokens import Doc
from spacy.training import biluo_tags_to_spans, iob_to_biluo
from spacy.vocab import Vocab

from .common import ConvertStats, PathLike, line_error, require_docs, unterminated_last_line

DOCSTART = "-DOCSTART-"
# Accepted tag prefixes and their IOB equivalent (BIOES "E"/"S" = BILUO "L"/"U").
_TAG_PREFIXES = {"B": "B", "I": "I", "L": "I", "U": "B", "E": "I", "S": "B"}
_BILUO_ONLY = {"L", "U", "E", "S"}


def _split_conll_line(line: str) -> List[str]:
    # Tab-separated when the line has a tab (token TAB tag), else whitespace.
    return line.split("\t") if "\t" in line else line.split()


def _check_tag(tag: str, path: PathLike, line_no: int, column: int) -> str:
    if tag == "O":
        return tag
    prefix, sep, label = tag.partition("-")
    field_name = f"column {column} (tag {tag!r})"
    if not sep or prefix not in _TAG_PREFIXES:
        raise line_error(
            path, line_no, field_name,
            "unknown tag prefix: expected O or B-, I-, L-, U-, E-, S- followed by a label",
        )
    if not label.strip():
        raise line_error(path, line_no, field_name, "tag has no label")
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


@require_docs
def read_conll(
    path: PathLike,
    *,
    vocab: Vocab,
    n_sents: int = 10,
    stats: Optional[ConvertStats] = None,
    strict: bool = False,
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
    strict (bool): A last line without a final newline (a cut file) is an
        error; otherwise a warning naming the file and line.
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

    line_no, terminated = 0, True
    with path.open(encoding="utf8") as file_:
        for line_no, line in enumerate(file_, start=1):
            terminated = line.endswith("\n")
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
                    raise line_error(
                        path, line_no, "columns",
                        f"expected token and tag columns, found {len(fields)} column",
                    )
                n_cols = len(fields)
            elif len(fields) != n_cols:
                raise line_error(
                    path, line_no, "columns",
                    f"expected {n_cols} columns like the first token line, found {len(fields)}",
                )
            word, tag = fields[0], fields[-1]
            if not word:
                raise line_error(path, line_no, "column 1 (token)", "empty token")
            sent.append((word, _check_tag(tag, path, line_no, n_cols)))
    if not terminated:
        # Before the last Doc is built, so that strict mode keeps no part of it.
        unterminated_last_line(path, line_no, strict=strict)
    if sent:
        sents.append(sent)
    if sents:
        yield make_doc()
