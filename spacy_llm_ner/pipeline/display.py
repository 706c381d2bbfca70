"""displaCy rendering of linked entities with their link probabilities.

Plain displaCy already shows the links set by `transformer_entity_linker`
(`ent.kb_id_`) as a link after each entity label::

    from spacy import displacy
    displacy.render(doc, style="ent", options={"kb_url_template": "https://www.wikidata.org/wiki/{}"})

`render_links` does the same and also puts the linker's probability in the
label (e.g. "PERSON 0.93"), using the scores that the linker stores in
`doc.spans` (so it also works on docs read back from a DocBin).
"""
from typing import Any, Dict, Iterable, Optional, Union

from spacy import displacy
from spacy.displacy.render import DEFAULT_LABEL_COLORS
from spacy.tokens import Doc


def link_data(
    doc: Doc, *, kb_url_template: Optional[str] = None, nil_id: str = "NIL", show_scores: bool = True
) -> Dict[str, Any]:
    """displaCy's manual "ent" data for a doc's linked entities.

    doc (Doc): A doc processed by transformer_entity_linker.
    kb_url_template (Optional[str]): URL with "{}" for the entity id; NIL
        and unlinked entities get no link.
    nil_id (str): The linker's NIL id.
    show_scores (bool): Append the link probability to the label.
    RETURNS (Dict[str, Any]): {"text", "ents", "title"} for
        displacy.render(..., manual=True).
    """
    ents = []
    for ent in doc.ents:
        label = ent.label_
        score = ent._.kb_score if ent.has_extension("kb_score") else None
        if show_scores and score is not None:
            label = f"{label} {score:.2f}"
        kb_id = ent.kb_id_
        linked = bool(kb_id) and kb_id != nil_id
        ents.append(
            {
                "start": ent.start_char,
                "end": ent.end_char,
                "label": label,
                "kb_id": kb_id,
                "kb_url": kb_url_template.format(kb_id) if (kb_url_template and linked) else "#",
            }
        )
    return {"text": doc.text, "ents": ents, "title": doc.user_data.get("title")}


def render_links(
    doc: Union[Doc, Iterable[Doc]],
    *,
    kb_url_template: Optional[str] = None,
    nil_id: str = "NIL",
    show_scores: bool = True,
    options: Optional[Dict[str, Any]] = None,
    **kwargs: Any,
) -> str:
    """Render a doc's entities with their KB links and link probabilities.

    doc (Union[Doc, Iterable[Doc]]): A doc processed by
        transformer_entity_linker, or several (one page).
    kb_url_template (Optional[str]): e.g. "https://www.wikidata.org/wiki/{}".
    nil_id (str): The linker's NIL id (shown, not linked).
    show_scores (bool): Put the probability in the label.
    options (Optional[Dict[str, Any]]): displaCy "ent" options; "colors" may
        name the plain labels.
    **kwargs: Passed to displacy.render (page, jupyter, minify, ...).
    RETURNS (str): The HTML (None in a notebook with jupyter=True).
    """
    docs = [doc] if isinstance(doc, Doc) else list(doc)
    data = [link_data(d, kb_url_template=kb_url_template, nil_id=nil_id, show_scores=show_scores) for d in docs]
    options = dict(options or {})
    colors = {**DEFAULT_LABEL_COLORS, **options.get("colors", {})}
    for d, item in zip(docs, data):
        for ent, shown in zip(d.ents, item["ents"]):
            if ent.label_ in colors:
                colors.setdefault(shown["label"], colors[ent.label_])
    options["colors"] = colors
    return displacy.render(data if len(data) != 1 else data[0], style="ent", manual=True, options=options, **kwargs)
