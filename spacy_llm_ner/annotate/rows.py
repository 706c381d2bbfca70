"""From records to annotated docs to output rows: the work every engine's
worker does on a part, and the one place a doc's failure is caught.

A row is one doc: its id, its metadata (a JSON object as text, so that shards
with different fields share one schema), its number of tokens and its entities,
each with its character offsets, label, NER score, KB id, link score and, when
asked, the linker's top candidates.
"""
import json
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple

from spacy.language import Language
from spacy.tokens import Doc

from .inputs import Record

NER_COMPONENT = "transformer_ner"
LINKER_COMPONENT = "transformer_entity_linker"


class Annotated(NamedTuple):
    """A part's outcome.

    rows (List[Dict[str, Any]]): One per processed doc, in input order.
    errors (List[Dict[str, str]]): {"id", "reason"} per doc that failed.
    docs (List[Doc]): The processed docs (for --docbin), in the rows' order.
    """

    rows: List[Dict[str, Any]]
    errors: List[Dict[str, str]]
    docs: List[Doc]


def annotate_records(
    nlp: Language, records: List[Record], *, batch_size: int, top_candidates: int, pipe: Optional[Callable] = None
) -> Annotated:
    """Run the pipeline over records; a doc that fails goes to the errors.

    nlp (Language): The pipeline.
    records (List[Record]): The records, problem ones included.
    batch_size (int): nlp.pipe's batch size.
    top_candidates (int): Candidates kept per entity (0: none).
    pipe (Optional[Callable]): Instead of nlp.pipe: a function of
        (texts with context) giving (doc, index) pairs, which may leave some
        out (e.g. nlp.pipe(n_process=N) with a logging error handler).
    RETURNS (Annotated): Rows, errors and docs.
    """
    todo = [(r.text, i) for i, r in enumerate(records) if r.problem is None]
    run = pipe or (lambda items: nlp.pipe(items, as_tuples=True, batch_size=batch_size))
    done: Dict[int, Doc] = {}
    try:
        done.update((i, doc) for doc, i in run(todo))
    except Exception:  # noqa: BLE001 - one bad doc fails its batch: find it below
        pass
    reasons = {i: r.problem for i, r in enumerate(records) if r.problem is not None}
    # Docs a failed batch took with it are redone one at a time: only the
    # doc that fails is lost, with its reason.
    for text, i in todo:
        if i not in done:
            doc, reason = _one(nlp, text)
            if doc is None:
                reasons[i] = reason
            else:
                done[i] = doc
    rows, errors, docs = [], [], []
    for i, record in enumerate(records):
        if i in done:
            rows.append(doc_row(done[i], record, top_candidates=top_candidates))
            docs.append(done[i])
        else:
            errors.append({"id": record.id, "reason": str(reasons[i])})
    return Annotated(rows, errors, docs)


def _one(nlp: Language, text: str) -> Tuple[Optional[Doc], str]:
    try:
        return nlp(text), ""
    except Exception as err:  # noqa: BLE001 - recorded as the doc's error
        return None, f"pipeline error: {type(err).__name__}: {err}"


def doc_row(doc: Doc, record: Record, *, top_candidates: int) -> Dict[str, Any]:
    """The output row of a doc.

    doc (Doc): The processed doc.
    record (Record): Its input record.
    top_candidates (int): Candidates kept per entity.
    RETURNS (Dict[str, Any]): id, meta (JSON text), n_words, entities.
    """
    ner_scores = _group_values(doc, NER_COMPONENT, "scores", with_label=True)
    link_scores = _group_values(doc, LINKER_COMPONENT, "scores", with_label=False)
    candidates = _group_values(doc, LINKER_COMPONENT, "candidates", with_label=False)
    entities = []
    for ent in doc.ents:
        found = candidates.get((ent.start, ent.end)) or []
        entities.append({
            "start": ent.start_char,
            "end": ent.end_char,
            "label": ent.label_,
            "score": _float(ner_scores.get((ent.start, ent.end, ent.label_))),
            "kb_id": ent.kb_id_ or None,
            "link_score": _float(link_scores.get((ent.start, ent.end))),
            "candidates": [{"kb_id": str(e), "score": float(p)} for e, p in found[:top_candidates]],
        })
    return {
        "id": record.id,
        "meta": json.dumps(record.meta, ensure_ascii=False, sort_keys=True, default=str),
        "n_words": len(doc),
        "entities": entities,
    }


def _group_values(doc: Doc, component: str, attr: str, *, with_label: bool) -> Dict[Tuple, Any]:
    # What a component stored per span in its scored doc.spans group.
    out: Dict[Tuple, Any] = {}
    for group in doc.spans.values():
        if group.attrs.get("component") != component:
            continue
        for span, value in zip(group, group.attrs.get(attr, [])):
            key = (span.start, span.end, span.label_) if with_label else (span.start, span.end)
            out[key] = value
    return out


def _float(value: Any) -> Optional[float]:
    return None if value is None else float(value)


def count_links(rows: Iterable[Dict[str, Any]], *, nil_id: str = "NIL") -> Tuple[int, int]:
    """Entities and linked entities (a KB id other than NIL) in rows.

    rows (Iterable[Dict[str, Any]]): Output rows.
    nil_id (str): The NIL id.
    RETURNS (Tuple[int, int]): (entities, links).
    """
    n_ents = n_links = 0
    for row in rows:
        for ent in row["entities"]:
            n_ents += 1
            n_links += ent["kb_id"] not in (None, "", nil_id)
    return n_ents, n_links
