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

from .records import EntityRecord

SKIPPED_IDS = ("", "NIL", "-1")
# How corpora join the ids of a composite mention: "D1|D2" (BC5CDR), "D1+D2"
# (NCBI-disease).
COMPOSITE_SEPARATORS = ("|", "+")


@dataclass
class MentionAliasStats:
    """What adding mention aliases did.

    added (int): New (entity, alias) pairs.
    known (int): Mentions already a name of their entity (counted in the
        priors, not added again).
    counted (int): Mentions counted in the priors.
    entities_counted (int): Entities with at least one counted mention.
    composite (int): Mentions with a composite id, left out.
    unknown_ids (Dict[str, int]): Gold ids not in the KB, with counts.
    """

    added: int = 0
    known: int = 0
    counted: int = 0
    entities_counted: int = 0
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
    # spaCy only here: adding aliases (`add_mention_aliases`) needs none.
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

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
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    counts: Counter = Counter()
    vocab = Vocab()
    for path in paths:
        for doc in DocBin().from_disk(path).get_docs(vocab):
            counts.update(ent.label_ for ent in doc.ents if ent.kb_id_ not in skip_ids)
    return counts


def add_mention_aliases(
    records: List[EntityRecord], mentions: Iterable[Tuple[str, str]], *, pseudo_count: float = 1.0
) -> Tuple[List[EntityRecord], MentionAliasStats]:
    """Add each mention as an alias of the entity with its id (primary id
    first, else an alternative id), and set the priors from how often each
    text links to each entity. Mentions with a composite id ("D1|D2" or
    "D1+D2", "breast and ovarian cancer") are counted and left out: as an alias
    of either part they would be wrong for the other.

    Priors are counts with pseudo-counts: c'(a, e) = c(a, e) + pseudo_count
    * P_dict(a | e), the dictionary's names worth `pseudo_count` mentions per
    entity, spread as the record's own alias priors say (evenly when none),
    and scaled by its entity prior relative to the mean given one when the KB
    has priors. With no mentions this is the dictionary's own rule (an entity
    with fewer names is the likelier reading of a shared name). Each record gets `prior` = c'(e) / N and `alias_priors` =
    c'(a, e) / c'(e), so the KB's P(entity | alias) by Bayes' rule is
    c'(a, e) / sum over e' of c'(a, e'): an entity linked from a text 20 times
    outranks one a single stray annotation links it to.

    records (List[EntityRecord]): The KB records.
    mentions (Iterable[Tuple[str, str]]): (text, kb_id) pairs.
    pseudo_count (float): How many annotated mentions an entity's dictionary
        names are worth in all (> 0).
    RETURNS (Tuple[List[EntityRecord], MentionAliasStats]): New records (the
        input is not changed) and counts.
    """
    if not pseudo_count > 0:
        raise ValueError(f"pseudo_count must be > 0 (got {pseudo_count!r})")
    counts, stats = _count_mentions(records, mentions)
    dictionary = _dictionary_counts(records, pseudo_count=pseudo_count)
    for i, by_text in counts.items():
        for text, n in by_text.items():
            dictionary[i][text] = dictionary[i].get(text, 0.0) + n
    total = sum(sum(c.values()) for c in dictionary) or 1.0
    out = []
    for i, record in enumerate(records):
        extra = [t for t in counts.get(i, {}) if t not in set(record.all_names())]
        stats.added += len(extra)
        mass = sum(dictionary[i].values())
        alias_priors = {a: c / mass for a, c in dictionary[i].items()} if i in counts else dict(record.alias_priors)
        out.append(replace(record, aliases=record.aliases + extra, prior=mass / total, alias_priors=alias_priors))
    stats.entities_counted = len(counts)
    return out, stats


def _count_mentions(
    records: List[EntityRecord], mentions: Iterable[Tuple[str, str]]
) -> Tuple[Dict[int, Dict[str, int]], MentionAliasStats]:
    """Mention counts c(text, entity row), in first-seen text order."""
    owner: Dict[str, int] = {}
    for i, record in enumerate(records):
        for alt in record.alt_ids:
            owner.setdefault(alt, i)
    for i, record in enumerate(records):
        owner[record.id] = i
    names = [set(r.all_names()) for r in records]
    counts: Dict[int, Dict[str, int]] = {}
    stats = MentionAliasStats()
    for text, kb_id in mentions:
        text = " ".join(text.split())
        i = owner.get(kb_id)
        if is_composite(kb_id):
            stats.composite += 1
        elif i is None:
            stats.unknown_ids[kb_id] = stats.unknown_ids.get(kb_id, 0) + 1
        else:
            stats.known += text in names[i]
            stats.counted += 1
            counts.setdefault(i, {})
            counts[i][text] = counts[i].get(text, 0) + 1
    return counts, stats


def _dictionary_counts(records: List[EntityRecord], *, pseudo_count: float) -> List[Dict[str, float]]:
    """Pseudo-counts c'(a, e) of the dictionary alone: `pseudo_count` per
    entity, shaped by the record's alias priors and weighted by its entity
    prior relative to the mean given prior (1 where none is given)."""
    given = [r.prior for r in records if r.prior is not None and r.prior > 0]
    mean_prior = sum(given) / len(given) if given else 1.0
    out = []
    for record in records:
        probs = record.alias_probabilities()
        weight = record.prior / mean_prior if record.prior is not None else 1.0
        mass = pseudo_count * weight
        out.append({a: mass * p for a, p in probs.items()})
    return out
