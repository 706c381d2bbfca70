"""Annotate a few texts with a trained pipeline and show the entities."""
from __future__ import annotations

import warnings
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, List, Optional, Tuple

import typer
from wasabi import msg

from . import app

if TYPE_CHECKING:  # spaCy is imported when the command runs (see cli/__init__.py)
    from spacy.tokens import Doc, Span


def load_texts(
    *,
    texts: Iterable[str] = (),
    text_file: Optional[Path] = None,
    n: int = 3,
) -> List[str]:
    """Collect the texts to annotate: every ``texts`` item, then the first
    ``n`` non-empty lines of ``text_file``.

    texts (Iterable[str]): Texts given directly.
    text_file (Optional[Path]): A file with one text per line.
    n (int): How many lines to take from the file.
    RETURNS (List[str]): The texts.
    """
    result = [t for t in texts if t.strip()]
    if text_file is not None:
        with Path(text_file).open(encoding="utf8") as file_:
            lines = (line.strip() for line in file_)
            result.extend(islice((line for line in lines if line), n))
    return result


def _score(ent: Span, attr: str) -> str:
    from spacy.tokens import Span

    value = getattr(ent._, attr) if Span.has_extension(attr) else None
    return "-" if value is None else f"{value:.3f}"


def entity_rows(doc: Doc) -> List[Tuple[str, str, str, str, str, str]]:
    """One row per entity: text, label, character offsets, NER confidence
    (``ent._.ner_confidence``), kb_id and link probability
    (``ent._.kb_score``); "-" where unknown.

    doc (Doc): An annotated Doc.
    RETURNS (List[Tuple[str, str, str, str, str, str]]): The table rows.
    """
    return [
        (
            ent.text,
            ent.label_,
            f"{ent.start_char}-{ent.end_char}",
            _score(ent, "ner_confidence"),
            ent.kb_id_ or "-",
            _score(ent, "kb_score"),
        )
        for ent in doc.ents
    ]


@app.command("show")
def show_cli(
    model: str = typer.Argument(
        ..., metavar="MODEL_DIR", help="Pipeline directory or installed package name"
    ),
    text: List[str] = typer.Option([], "--text", "-t", help="Text to annotate (repeatable)"),
    text_file: Optional[Path] = typer.Option(
        None, "--text-file", exists=True, dir_okay=False, help="One text per line"
    ),
    docs_file: Optional[Path] = typer.Option(
        None, "--docs", exists=True, dir_okay=False, help=".spacy file: annotate its docs' texts"
    ),
    html: Optional[Path] = typer.Option(
        None, "--html", dir_okay=False, help="Write a displaCy entity page here"
    ),
    n: int = typer.Option(3, "--n", "-n", min=1, help="Texts to take from --text-file / --docs"),
    kb_url_template: Optional[str] = typer.Option(
        None, "--kb-url-template", help='Link entities in the HTML, e.g. "https://meshb.nlm.nih.gov/record/ui?ui={}"'
    ),
) -> None:
    """Annotate texts with a pipeline and print the entities it finds."""
    import spacy
    from spacy import displacy
    from spacy.tokens import Doc, DocBin

    from ..pipeline.display import render_links

    nlp = spacy.load(model)
    inputs: List = list(load_texts(texts=text, text_file=text_file, n=n))
    gold: List[Optional[Doc]] = [None] * len(inputs)
    if docs_file is not None:
        for doc in islice(DocBin().from_disk(docs_file).get_docs(nlp.vocab), n):
            # Keep the file's tokenization, drop its annotations.
            spaces = [bool(t.whitespace_) for t in doc]
            inputs.append(Doc(nlp.vocab, words=[t.text for t in doc], spaces=spaces))
            gold.append(doc)
    if not inputs:
        msg.fail("Nothing to annotate: give --text, --text-file or --docs", exits=1)
    docs = list(nlp.pipe(inputs))
    for i, (doc, gold_doc) in enumerate(zip(docs, gold), start=1):
        preview = doc.text if len(doc.text) <= 80 else doc.text[:77] + "..."
        msg.divider(f"Text {i}")
        print(preview)
        rows = entity_rows(doc)
        if rows:
            msg.table(rows, header=("Entity", "Label", "Chars", "Conf.", "KB id", "Link p"), divider=True)
        else:
            msg.info("No entities")
        if gold_doc is not None:
            predicted = {(e.start_char, e.end_char, e.label_) for e in doc.ents}
            expected = {(e.start_char, e.end_char, e.label_) for e in gold_doc.ents}
            msg.info(
                f"Gold: {len(expected)} entities, predicted {len(predicted)}, "
                f"{len(predicted & expected)} exact matches"
            )
    if html is not None:
        with warnings.catch_warnings():  # docs without entities are expected
            warnings.filterwarnings("ignore", message=r"\[W006\]")
            if kb_url_template is not None or any(ent.kb_id_ for doc in docs for ent in doc.ents):
                page = render_links(docs, kb_url_template=kb_url_template, page=True, jupyter=False)
            else:
                page = displacy.render(docs, style="ent", page=True, jupyter=False)
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(page, encoding="utf8")
        msg.good(f"Wrote {html}")
