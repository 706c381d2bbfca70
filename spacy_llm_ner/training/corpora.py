"""Deprecated: the corpus readers moved to `spacy_llm_ner.corpora` (one module
per format). This module re-exports the old names and warns on import."""
import warnings

from ..corpora import (  # noqa: F401  (re-exported for old imports)
    DOCSTART,
    FORMATS,
    ConvertStats,
    Mention,
    PathLike,
    convert,
    detect_format,
    make_doc_with_boundaries,
    read_conll,
    read_docs,
    read_jsonl,
    read_pubtator,
)

warnings.warn(
    "spacy_llm_ner.training.corpora moved to spacy_llm_ner.corpora", DeprecationWarning, stacklevel=2
)

__all__ = [
    "DOCSTART",
    "FORMATS",
    "ConvertStats",
    "Mention",
    "PathLike",
    "convert",
    "detect_format",
    "make_doc_with_boundaries",
    "read_conll",
    "read_docs",
    "read_jsonl",
    "read_pubtator",
]
