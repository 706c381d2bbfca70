"""Corpus readers: NER corpora (CoNLL IOB, PubTator, JSONL) as spaCy ``Doc``
objects, and their conversion to spaCy's binary ``DocBin`` format
(``.spacy``). The `convert` command (`cli/convert.py`) is a thin wrapper.

The readers stream ``Doc`` objects::

    from spacy_llm_ner.corpora import convert, read_pubtator
    stats = convert("train.PubTator.txt", "train.spacy", fmt="auto")

Nothing is dropped silently: whatever a reader cannot keep (overlapping
mentions, rejected Prodigy answers, relation lines) is counted in a
``ConvertStats`` and shown by the ``convert`` command. Malformed input raises
``ValueError`` naming the file, the line number and the field (a PubTator
mention that does not match its text can instead be skipped with
``on_error="skip"`` / ``"skip-mention"``, each skip warned about and
counted); a file that yields no document at all (empty or blank-only) raises
``ValueError`` naming the file. Link ids with stray whitespace are stripped
and counted; a last line without a final newline is warned about (an error
with ``strict=True``).

One module per format (`conll`, `pubtator`, `jsonl`); `offsets` builds Docs
from character offsets for the last two, `formats` picks a reader and writes
the DocBin. The readers take a pipeline (`nlp`) or only what they use of it, a
`Tokenization` (vocab and tokenizer; `tokenization(lang)` builds spacy.blank's
without the cost of a `Language`).
"""
from .common import ConvertStats, Mention, PathLike
from .conll import DOCSTART, read_conll
from .formats import FORMATS, convert, detect_format, read_docs
from .jsonl import read_jsonl
from .offsets import make_doc_with_boundaries
from .pubtator import read_pubtator
from .tokenization import Tokenization, Tokenizing, tokenization

__all__ = [
    "DOCSTART",
    "FORMATS",
    "ConvertStats",
    "Mention",
    "PathLike",
    "Tokenization",
    "Tokenizing",
    "convert",
    "detect_format",
    "make_doc_with_boundaries",
    "read_conll",
    "read_docs",
    "read_jsonl",
    "read_pubtator",
    "tokenization",
]
