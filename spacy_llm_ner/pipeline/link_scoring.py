"""Scoring entity links: spaCy's `Scorer.score_links` with a configurable
NIL id, and micro scores restricted to the entity types a linker links.
"""
from typing import Any, Callable, Dict, Iterable, Optional, Sequence

from spacy.scorer import PRFScore, Scorer
from spacy.training import Example
from spacy.util import registry


@registry.scorers("spacy_llm_ner.entity_linker_scorer.v1")
def make_entity_linker_scorer() -> Callable:
    """spaCy's link scorer (nel_micro_p/r/f, per type) with a configurable
    NIL id; the component adds candidate recall and in-KB accuracy."""
    return score_links


def score_links(
    examples: Iterable[Example], *, nil_id: str = "NIL", labels: Sequence[str] = (), **kwargs: Any
) -> Dict[str, Any]:
    """`Scorer.score_links` on the entities that match a gold entity; gold
    entities without a kb_id and `nil_id` are the negative labels. With
    `labels`, the micro scores count those entity types only (the linker
    leaves the others alone, so their gold ids are not its misses).

    examples (Iterable[Example]): The examples.
    nil_id (str): The NIL id.
    labels (Sequence[str]): Entity types the linker links; empty: all.
    RETURNS (Dict[str, Any]): nel_micro_p, nel_micro_r, nel_micro_f,
        nel_f_per_type, ...
    """
    scores = Scorer.score_links(examples, negative_labels=[nil_id, ""])
    if labels:
        per_type = {k: v for k, v in scores["nel_f_per_type"].items() if k in labels}
        scores.update(_micro_links(examples, nil_id=nil_id, labels=labels))
        scores["nel_f_per_type"] = per_type
    return scores


def _micro_links(examples: Iterable[Example], *, nil_id: str, labels: Sequence[str]) -> Dict[str, float]:
    """Micro P/R/F of Scorer.score_links restricted to some gold labels
    (spaCy's per-type output keeps only P/R/F, not the counts to pool)."""
    negative = (nil_id, "")
    prf = PRFScore()
    for eg in examples:
        gold = {(e.start_char, e.end_char): e for e in eg.reference.ents if e.label_ in labels}
        for pred in eg.predicted.ents:
            ent = gold.get((pred.start_char, pred.end_char))
            if ent is None or (ent.kb_id_ in negative and pred.kb_id_ in negative):
                continue
            if ent.kb_id_ == pred.kb_id_:
                prf.tp += 1
            elif ent.kb_id_ in negative:
                prf.fp += 1
            elif pred.kb_id_ in negative:
                prf.fn += 1
            else:  # a wrong id is both
                prf.fp += 1
                prf.fn += 1
    return {"nel_score": prf.fscore, "nel_micro_p": prf.precision, "nel_micro_r": prf.recall, "nel_micro_f": prf.fscore}


def score_gold_mentions(links: Sequence[Any], targets: Sequence[str]) -> Dict[str, Optional[float]]:
    """Candidate recall and accuracy of the links made on gold mentions whose
    entity is in the KB.

    links (Sequence[Link]): The linker's decision on each gold mention.
    targets (Sequence[str]): The gold entity of each.
    RETURNS (Dict[str, Optional[float]]): nel_candidate_recall (the gold
        entity among the candidates) and nel_inkb_accuracy (the link is the
        gold entity); None without gold mentions.
    """
    if not targets:
        return {"nel_candidate_recall": None, "nel_inkb_accuracy": None}
    found = sum(any(e == t for e, _ in link.candidates) for link, t in zip(links, targets))
    correct = sum(link.kb_id == t for link, t in zip(links, targets))
    return {"nel_candidate_recall": found / len(targets), "nel_inkb_accuracy": correct / len(targets)}
