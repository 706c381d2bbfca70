"""Gold mentions of annotated data as extra aliases of their entities.

A dictionary rarely holds every way a corpus names its entities ("renal
failure" for "Kidney Failure"); the gold-linked mentions of the training
data are the cheapest supplement (BioSyn and SapBERT's evaluation setting
uses them too). Mentions are matched to entities by primary or alternative
id; ones whose id is not in the KB are counted, not silently dropped.
"""
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple

from spacy.tokens import DocBin
from spacy.vocab import Vocab

from .records import EntityRecord

SKIPPED_IDS = ("", "NIL", "-1")
# How corpora join the ids of a composite mention: "D1|D2" (BC5CDR), "D1+D2"
# (NCBI-disease).
COMPOSITE_SEPARATORS = ("|", "+")


@dataclass
class MentionAliasStats:
    """What adding mention aliases did.

    added (int): New (entity, alias) pairs.
    known (int): Mentions already a name of their entity.
    composite (int): Mentions with a composite id, left out.
    unknown_ids (Dict[str, int]): Gold ids not in the KB, with counts.
    """

    added: int = 0
    known: int = 0
    composite: int = 0
    unknown_ids: Dict[str, int] = field(default_factory=dict)


def read_linked_mentions(
    paths: Sequence[Path], *, labels: Sequence[str] = (), skip_ids: Sequence[str] = SKIPPED_IDS
) -> Iterator[Tuple[str, str]]:
    """(mention text, kb_id) of the gold entities in .spacy files.

    paths (Sequence[Path]): DocBin files (e.g. from `spacy_llm_ner convert`).
    labels (Sequence[str]): Entity labels to read; empty: all.
    skip_ids (Sequence[str]): kb_ids meaning "not linked".
    RETURNS (Iterator[Tuple[str, str]]): The mentions.
    """
    vocab = Vocab()
    for path in paths:
        for doc in DocBin().from_disk(path).get_docs(vocab):
            for ent in doc.ents:
                if ent.kb_id_ not in skip_ids and (not labels or ent.label_ in labels):
                    yield ent.text, ent.kb_id_


def is_composite(kb_id: str) -> bool:
    """Whether a kb_id joins several ids (see COMPOSITE_SEPARATORS).

    kb_id (str): The id.
    RETURNS (bool): True for "D1|D2" and "D1+D2".
    """
    return any(sep in kb_id for sep in COMPOSITE_SEPARATORS)


def linked_labels(paths: Sequence[Path], *, skip_ids: Sequence[str] = SKIPPED_IDS) -> Counter:
    """How many gold entities with a kb_id each label has in .spacy files
    (to say which labels there are when a label filter matched none).

    paths (Sequence[Path]): DocBin files.
    skip_ids (Sequence[str]): kb_ids meaning "not linked".
    RETURNS (Counter): Label to count.
    """
    counts: Counter = Counter()
    vocab = Vocab()
    for path in paths:
        for doc in DocBin().from_disk(path).get_docs(vocab):
            counts.update(ent.label_ for ent in doc.ents if ent.kb_id_ not in skip_ids)
    return counts


def add_mention_aliases(
    records: List[EntityRecord], mentions: Iterable[Tuple[str, str]]
) -> Tuple[List[EntityRecord], MentionAliasStats]:
    """Add each mention as an alias of the entity with its id (primary id
    first, else an alternative id). Mentions with a composite id ("D1|D2" or
    "D1+D2", "breast and ovarian cancer") are counted and left out: as an alias of
    either part they would be wrong for the other.

    records (List[EntityRecord]): The KB records.
    mentions (Iterable[Tuple[str, str]]): (text, kb_id) pairs.
    RETURNS (Tuple[List[EntityRecord], MentionAliasStats]): New records (the
        input is not changed) and counts.
    """
    owner: Dict[str, int] = {}
    for i, record in enumerate(records):
        for alt in record.alt_ids:
            owner.setdefault(alt, i)
    for i, record in enumerate(records):
        owner[record.id] = i
    names = [set(r.all_names()) for r in records]
    extra: Dict[int, List[str]] = {}
    stats = MentionAliasStats()
    for text, kb_id in mentions:
        text = " ".join(text.split())
        i = owner.get(kb_id)
        if is_composite(kb_id):
            stats.composite += 1
        elif i is None:
            stats.unknown_ids[kb_id] = stats.unknown_ids.get(kb_id, 0) + 1
        elif text in names[i]:
            stats.known += 1
        else:
            names[i].add(text)
            extra.setdefault(i, []).append(text)
            stats.added += 1
    out = [replace(r, aliases=r.aliases + extra[i]) if i in extra else r for i, r in enumerate(records)]
    return out, stats
