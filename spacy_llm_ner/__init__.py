"""spacy-llm-ner: transformer-backed NER and entity linking for spaCy.

spaCy finds every factory, architecture and function through the setup.cfg
entry points, so importing the package itself loads nothing heavy: commands
that need no model start without spacy-transformers (`convert`), or without
spaCy and torch at all (`build-kb`, `--help`). `TransformerNER` and `make_transformer_ner` are imported
on first use.
"""
import importlib
from typing import Any

from .about import __version__
from .util import install_fork_guard

install_fork_guard()

_LAZY = {"TransformerNER": ".pipeline", "make_transformer_ner": ".pipeline"}
__all__ = ["__version__", "TransformerNER", "make_transformer_ner"]


def __getattr__(name: str) -> Any:
    # PEP 562: the pipeline (torch, spacy-transformers) only when asked for.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
