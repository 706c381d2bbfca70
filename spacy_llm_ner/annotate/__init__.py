"""`annotate`: run a saved pipeline over a corpus of any size, on this machine
(`nlp.pipe`) or an existing distributed engine, with resumable per-part output
and a check that every input doc is in the output exactly once.

The job (and spaCy with it) is imported on first use, so that the CLI starts
without loading spaCy (PEP 562)."""
from typing import Any

__all__ = ["AnnotateError", "Summary", "annotate"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import job

        return getattr(job, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
