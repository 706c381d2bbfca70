"""Deprecated: the tag schemes moved to `spacy_llm_ner.ml.tags`. This module
re-exports the old names and warns on import."""
import warnings

from .ml.tags import SCHEMES, B, I, L, O, TagSet, U, labels_from_tags  # noqa: F401  (re-exported for old imports)

warnings.warn("spacy_llm_ner.tags moved to spacy_llm_ner.ml.tags", DeprecationWarning, stacklevel=2)

__all__ = ["SCHEMES", "B", "I", "L", "O", "TagSet", "U", "labels_from_tags"]
