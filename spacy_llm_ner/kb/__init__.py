"""Knowledge-base layer for entity linking: records and loaders, the
scalable `LinkerKB` (a spaCy `KnowledgeBase`), and the candidate cascade
(exact -> normalised -> char 3-gram TF-IDF -> document abbreviations).

Importing this package registers the KB loaders in `registry.misc`.
"""
from .abbreviations import Abbreviation, find_abbreviation_definitions, find_abbreviations
from .candidates import STAGES, CascadeConfig, ScoredCandidate, expand_abbreviation
from .knowledge_base import LinkerKB
from .loaders import (
    make_csv_kb_loader,
    make_ctd_kb_loader,
    make_disk_kb_loader,
    make_empty_linker_kb,
    make_jsonl_kb_loader,
    read_csv,
    read_ctd,
    read_jsonl,
)
from .mentions import MentionAliasStats, add_mention_aliases, read_linked_mentions
from .normalize import normalize
from .records import EntityRecord, KBFormatError

__all__ = [
    "Abbreviation",
    "CascadeConfig",
    "EntityRecord",
    "KBFormatError",
    "LinkerKB",
    "MentionAliasStats",
    "STAGES",
    "add_mention_aliases",
    "ScoredCandidate",
    "expand_abbreviation",
    "find_abbreviation_definitions",
    "find_abbreviations",
    "make_csv_kb_loader",
    "make_ctd_kb_loader",
    "make_disk_kb_loader",
    "make_empty_linker_kb",
    "make_jsonl_kb_loader",
    "normalize",
    "read_csv",
    "read_ctd",
    "read_jsonl",
    "read_linked_mentions",
]
