"""Reading any supported format (picked from the file) and converting it to
spaCy's binary ``DocBin`` (``.spacy``)."""
from pathlib import Path
from typing import Iterator, Optional

from spacy.tokens import Doc, DocBin

from .common import ConvertStats, PathLike
from .conll import read_conll
from .jsonl import read_jsonl
from .pubtator import PUBTATOR_TEXT_RE, read_pubtator
from .tokenization import Tokenizing, tokenization

FORMATS = ("auto", "conll", "pubtator", "jsonl")


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
                return "pubtator" if PUBTATOR_TEXT_RE.match(line.rstrip("\r\n")) else "conll"
    return "conll"


def read_docs(
    input_path: PathLike,
    *,
    nlp: Tokenizing,
    fmt: str = "auto",
    n_sents: int = 10,
    stats: Optional[ConvertStats] = None,
    strict: bool = False,
    keep_duplicates: bool = False,
    on_error: str = "raise",
) -> Iterator[Doc]:
    """Read Docs from a file in any supported format.

    input_path (PathLike): The file.
    nlp (Union[Language, Tokenization]): Provides the tokenizer and vocab.
    fmt (str): "auto", "conll", "pubtator" or "jsonl".
    n_sents (int): CoNLL sentences per Doc when there is no -DOCSTART-.
    stats (Optional[ConvertStats]): Updated with what is skipped or repaired.
    strict (bool): A missing final newline is an error, not a warning.
    keep_duplicates (bool): PubTator: keep a document whose PMID was seen
        before (default: only the first; counted and warned either way).
    on_error (str): PubTator: "raise" (default), "skip"/"skip-doc" or
        "skip-mention" for a bad mention line (see `read_pubtator`).
    YIELDS (Doc): The Docs.
    RAISES (ValueError): On an unknown format, or `on_error` other than
        "raise" for a file that is not PubTator.
    """
    if fmt not in FORMATS:
        raise ValueError(f"Unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(input_path)
    if on_error != "raise" and fmt != "pubtator":
        # The other readers have no per-record skipping: say so rather than ignore it.
        raise ValueError(f"on_error={on_error!r} applies to PubTator files only (this one reads as {fmt})")
    if fmt == "conll":
        return read_conll(input_path, vocab=nlp.vocab, n_sents=n_sents, stats=stats, strict=strict)
    if fmt == "pubtator":
        return read_pubtator(
            input_path, nlp=nlp, stats=stats, strict=strict, keep_duplicates=keep_duplicates, on_error=on_error
        )
    return read_jsonl(input_path, nlp=nlp, stats=stats, strict=strict)


def convert(
    input_path: PathLike,
    output_path: PathLike,
    *,
    fmt: str = "auto",
    lang: str = "en",
    n_sents: int = 10,
    strict: bool = False,
    keep_duplicates: bool = False,
    on_error: str = "raise",
) -> ConvertStats:
    """Convert an annotated file to a ``.spacy`` DocBin.

    input_path (PathLike): CoNLL, PubTator or JSONL file.
    output_path (PathLike): The DocBin file to write (parents are created).
    fmt (str): "auto", "conll", "pubtator" or "jsonl".
    lang (str): Language code of the tokenizer (that of `spacy.blank(lang)`).
    n_sents (int): CoNLL sentences per Doc when there is no -DOCSTART-.
    strict (bool): A missing final newline is an error, not a warning.
    keep_duplicates (bool): PubTator: keep a document whose PMID was seen
        before (default: only the first; counted and warned either way).
    on_error (str): PubTator: "raise" (default), "skip"/"skip-doc" or
        "skip-mention" for a bad mention line (see `read_pubtator`).
    RETURNS (ConvertStats): Counts of what was written, skipped and repaired.
    """
    # Not spacy.blank(): a Language imports every installed spaCy factory
    # (torch, transformers) through entry points; the tokens are the same.
    nlp = tokenization(lang)
    stats = ConvertStats()
    doc_bin = DocBin(attrs=["ORTH", "SPACY", "SENT_START", "ENT_IOB", "ENT_TYPE", "ENT_KB_ID"])
    for doc in read_docs(
        input_path, nlp=nlp, fmt=fmt, n_sents=n_sents, stats=stats, strict=strict, keep_duplicates=keep_duplicates,
        on_error=on_error,
    ):
        doc_bin.add(doc)
        stats.add_doc(doc)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    doc_bin.to_disk(output_path)
    return stats
