"""Deprecated: the weak labeller moved to `spacy_llm_ner.training.weak`
(the labeller) and `spacy_llm_ner.training.weak_io` (reading raw text and
stop-lists, records from annotated docs). This module re-exports the old
names and warns on import."""
import importlib
import warnings
from typing import Any, List

warnings.warn(
    "spacy_llm_ner.kb.weak moved to spacy_llm_ner.training.weak", DeprecationWarning, stacklevel=2
)

# Where each old name lives now. Looked up on first use rather than imported
# here, so that the KB layer keeps no import of training/.
_MOVED = {
    **dict.fromkeys(
        (
            "AMBIGUOUS_KEY", "DEFAULT_LABEL", "DEFAULT_STOPLIST", "LABELS_KEY", "OPEN_SPAN_KEYS",
            "OPEN_WORDS_KEY", "SILVER_KEY", "SPANS_KEY", "STOPLISTED_KEY", "WeakLabelStats", "WeakLabeler",
            "WeakMatch", "name_words",
        ),
        "spacy_llm_ner.training.weak",
    ),
    **dict.fromkeys(
        ("PathLike", "read_raw_docs", "read_stoplist", "records_from_docs"), "spacy_llm_ner.training.weak_io"
    ),
}
__all__ = sorted(_MOVED)


def __getattr__(name: str) -> Any:
    """An old name, from its new module.

    name (str): The attribute asked for.
    RETURNS (Any): Its value.
    """
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_MOVED[name]), name)


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_MOVED))
