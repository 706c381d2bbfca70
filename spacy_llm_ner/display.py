"""Deprecated: the rendering of linked entities moved to
`spacy_llm_ner.pipeline.display`. This module re-exports the old names and
warns on import."""
import warnings

from .pipeline.display import link_data, render_links  # noqa: F401  (re-exported for old imports)

warnings.warn("spacy_llm_ner.display moved to spacy_llm_ner.pipeline.display", DeprecationWarning, stacklevel=2)

__all__ = ["link_data", "render_links"]
