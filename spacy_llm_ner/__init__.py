"""spacy-llm-ner: transformer-backed NER and entity linking for spaCy.

Importing the package registers every factory, architecture and function;
spaCy also finds them without an import through the setup.cfg entry points.
"""
from .about import __version__
from .ml import features, models, ops, spans, transformer  # noqa: F401  (registers architectures, span getters, callbacks)
from . import kb, training  # noqa: F401  (registers augmenters and readers)
from .pipeline import TransformerNER, make_transformer_ner
from .util import install_fork_guard

install_fork_guard()

__all__ = ["__version__", "TransformerNER", "make_transformer_ner"]
