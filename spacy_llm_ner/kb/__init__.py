"""Knowledge-base layer for entity linking: records and loaders, the
scalable `LinkerKB` (a spaCy `KnowledgeBase`), and the candidate cascade
(exact -> normalised -> char 3-gram TF-IDF -> document abbreviations).

Every name below is imported on first use (PEP 562): the records, readers
and `write_kb` need no spaCy, and `build-kb` starts without it (spaCy
imports torch through thinc). spaCy finds the KB loaders of `registry.misc`
through the setup.cfg entry points; importing `spacy_llm_ner.kb.loaders`
registers them too.
"""
import importlib
from typing import Any, Dict, List

# Eager, and cheap (the standard library only): a lazy `normalize` would be
# shadowed by the submodule of that name once anything imports it.
from .normalize import normalize

# Public name -> the module (in this package) that defines it.
_LAZY: Dict[str, str] = {
    "Abbreviation": "abbreviations",
    "find_abbreviation_definitions": "abbreviations",
    "find_abbreviations": "abbreviations",
    "STAGES": "candidates",
    "CascadeConfig": "candidates",
    "ScoredCandidate": "candidates",
    "expand_abbreviation": "candidates",
    "LinkerKB": "knowledge_base",
    "make_csv_kb_loader": "loaders",
    "make_ctd_kb_loader": "loaders",
    "make_disk_kb_loader": "loaders",
    "make_empty_linker_kb": "loaders",
    "make_jsonl_kb_loader": "loaders",
    "KB_FORMATS": "readers",
    "read_csv": "readers",
    "read_ctd": "readers",
    "read_jsonl": "readers",
    "read_records": "readers",
    "resolve_format": "readers",
    "MentionAliasStats": "mentions",
    "add_mention_aliases": "mentions",
    "read_linked_mentions": "mentions",
    "EntityRecord": "records",
    "KBFormatError": "records",
    "write_kb": "writer",
    "VectorIndex": "vector_index",
}

__all__ = sorted([*_LAZY, "normalize"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_LAZY))
