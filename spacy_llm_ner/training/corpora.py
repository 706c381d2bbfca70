"""Deprecated: the corpus readers moved to `spacy_llm_ner.corpora` (one module
per format). This module re-exports the old names and warns on import."""
import warnings

from .. import corpora
from ..corpora import *  # noqa: F401,F403  (re-exported for old imports)

warnings.warn(
    "spacy_llm_ner.training.corpora moved to spacy_llm_ner.corpora", DeprecationWarning, stacklevel=2
)

__all__ = list(corpora.__all__)
