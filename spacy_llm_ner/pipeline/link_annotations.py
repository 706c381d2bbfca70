"""What `transformer_entity_linker` writes on a Doc, and how it is read back.

Each linked entity gets `ent.kb_id_`; the scored candidates of every entity
the linker looked at are kept in `doc.spans[spans_key]`, whose attrs survive
`DocBin` and `Doc.to_disk`:

- `scores`: the probability of the id the entity carries;
- `nil_scores`: the probability of NIL;
- `candidates`: `[[entity_id, probability], ...]`, best first.

`span._.kb_candidates` and `span._.kb_score` read them back for any span of
the doc with the same boundaries.
"""
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc, Span, SpanGroup

COMPONENT = "transformer_entity_linker"
CANDIDATES_ATTR = "kb_candidates"
SCORE_ATTR = "kb_score"
# Probabilities are never exactly 1 (NIL always keeps some mass); clip the
# float rounding so that threshold = 1.0 reliably links nothing.
_MAX_PROB = float(numpy.nextafter(1.0, 0.0))


class Link(NamedTuple):
    """The linker's decision for one mention.

    kb_id (str): The chosen entity id, or the NIL id.
    score (float): Probability of the choice (NIL's probability for NIL).
    nil_score (float): Probability of NIL.
    candidates (List[Tuple[str, float]]): Candidates with probabilities, best
        first.
    """

    kb_id: str
    score: float
    nil_score: float
    candidates: List[Tuple[str, float]]


def decide(entity_ids: Sequence[str], probs: numpy.ndarray, *, nil_id: str, threshold: float) -> Link:
    """The link of a mention from the softmax over its options.

    entity_ids (Sequence[str]): The candidates, in the order of probs.
    probs (numpy.ndarray): [candidate probabilities..., NIL probability].
    nil_id (str): The NIL id.
    threshold (float): A best candidate below it becomes NIL.
    RETURNS (Link): The decision; NIL when it is at least as probable as the
        best candidate, or the best is below the threshold.
    """
    if not len(entity_ids):
        return Link(nil_id, 1.0, 1.0, [])
    probs = numpy.minimum(probs, _MAX_PROB)
    p_nil = float(probs[-1])
    order = numpy.argsort(-probs[:-1], kind="stable")
    ranked = [(entity_ids[i], float(probs[i])) for i in order]
    best_id, p_best = ranked[0]
    if p_best <= p_nil or p_best < threshold:
        return Link(nil_id, p_nil, p_nil, ranked)
    return Link(best_id, p_best, p_nil, ranked)


def kept_score(link: Link, kb_id: str, *, nil_id: str) -> float:
    """The probability the linker gives an id already on the entity (kept
    with overwrite = false): kb_score must describe the id the entity
    carries, not the linker's own choice.

    link (Link): The linker's decision for the entity.
    kb_id (str): The kept id.
    nil_id (str): The NIL id.
    RETURNS (float): Its probability; 0.0 for an id not among the candidates.
    """
    if kb_id == link.kb_id:
        return link.score
    if kb_id == nil_id:
        return link.nil_score
    return dict(link.candidates).get(kb_id, 0.0)


def write_links(doc: Doc, ents: List[Span], links: List[Link], *, key: str, overwrite: bool, nil_id: str) -> None:
    """Set the entities' kb ids and store the scored candidates.

    doc (Doc): The document.
    ents (List[Span]): The linked entities.
    links (List[Link]): One decision per entity.
    key (str): The doc.spans key.
    overwrite (bool): Replace kb ids already set on the entities.
    nil_id (str): The NIL id.
    """
    if len(ents) != len(links):
        raise ValueError(f"[{COMPONENT}] Got {len(links)} links for {len(ents)} entities.")
    spans, scores = [], []
    for ent, link in zip(ents, links):
        if overwrite or not ent.kb_id:
            for token in ent:
                token.ent_kb_id_ = link.kb_id
            scores.append(link.score)
        else:
            scores.append(kept_score(link, ent.kb_id_, nil_id=nil_id))
        spans.append(Span(doc, ent.start, ent.end, label=ent.label, kb_id=doc[ent.start].ent_kb_id))
    attrs = {
        "component": COMPONENT,
        "scores": scores,
        "nil_scores": [link.nil_score for link in links],
        "candidates": [[[e, p] for e, p in link.candidates] for link in links],
    }
    doc.spans[key] = SpanGroup(doc, name=key, attrs=attrs, spans=spans)


def _find(span: Span, attr: str) -> Optional[Any]:
    for group in span.doc.spans.values():
        if group.attrs.get("component") != COMPONENT:
            continue
        for other, value in zip(group, group.attrs.get(attr, [])):
            if (other.start, other.end) == (span.start, span.end):
                return value
    return None


def _span_candidates(span: Span) -> Optional[List[Tuple[str, float]]]:
    found = _find(span, "candidates")
    return None if found is None else [(str(e), float(p)) for e, p in found]


def _span_score(span: Span) -> Optional[float]:
    found = _find(span, "scores")
    return None if found is None else float(found)


def register_extensions() -> None:
    """Register `span._.kb_candidates` and `span._.kb_score` (once)."""
    if not Span.has_extension(CANDIDATES_ATTR):
        Span.set_extension(CANDIDATES_ATTR, getter=_span_candidates)
    if not Span.has_extension(SCORE_ATTR):
        Span.set_extension(SCORE_ATTR, getter=_span_score)
