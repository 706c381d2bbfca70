"""`weak-label`: label raw text with a knowledge base's names (silver data)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer
from wasabi import msg

from ..kb.readers import KB_FORMATS
from . import app

if TYPE_CHECKING:  # spaCy is imported when the command runs (see cli/__init__.py)
    from spacy.language import Language
    from spacy.tokens import Doc


@app.command("weak-label")
def weak_label_cli(
    kb_path: Path = typer.Argument(
        ..., exists=True, metavar="KB", help="KB file (JSONL/CSV/TSV/CTD) or LinkerKB folder"
    ),
    raw_path: Path = typer.Argument(
        ..., exists=True, dir_okay=False, metavar="RAW", help=".txt (a doc per line), .jsonl ('text') or .spacy"
    ),
    output_path: Path = typer.Argument(..., dir_okay=False, metavar="OUT.spacy", help="Output .spacy file"),
    fmt: str = typer.Option("auto", "--format", "-f", help=f"KB file format: one of {', '.join(KB_FORMATS)}"),
    strip_prefix: Optional[str] = typer.Option(None, "--strip-prefix", help="Id prefix to strip, e.g. MESH:"),
    types: List[str] = typer.Option([], "--types", help="Only KB records of this type (repeatable)"),
    stoplist: Optional[Path] = typer.Option(
        None, "--stoplist", exists=True, dir_okay=False, help="More names never to label, one per line"
    ),
    no_default_stoplist: bool = typer.Option(
        False, "--no-default-stoplist", help="Do not use the built-in English stop-list"
    ),
    min_length: int = typer.Option(3, "--min-length", min=1, help="Shortest name (characters) to label"),
    case_sensitive: bool = typer.Option(False, "--case-sensitive", help="Match case exactly"),
    missing_outside: bool = typer.Option(
        False, "--missing-outside", help="Leave tokens outside matches missing instead of O"
    ),
    partial_outside: bool = typer.Option(
        False, "--partial-outside",
        help="Leave tokens outside matches missing, marked as none of the KB's labels (transformer_ner trains "
        "on that partial label; for a KB taken as complete for its own types)",
    ),
    abbreviations: bool = typer.Option(
        False, "--abbreviations", help="Label short forms defined after a matched long form, e.g. ARF in "
        "'acute renal failure (ARF)', wherever they occur in the doc"
    ),
    open_name_words: float = typer.Option(
        0.0, "--open-name-words", min=0.0, metavar="RATIO",
        help="With --partial-outside: leave fully open the words at least RATIO times more frequent in the KB's "
        "names than in the text (words of names the KB lacks); 0 = off",
    ),
    names_from: List[Path] = typer.Option(
        [], "--names-from", exists=True, dir_okay=False,
        help="A .spacy file whose entities become names too, label = type, filtered by --types (repeatable); "
        "a partial label never denies their types unless the KB has them",
    ),
    lang: str = typer.Option("en", "--lang", help="Language of the tokenizer for .txt / .jsonl"),
) -> None:
    """Label raw text with the KB's names and aliases: longest match first,
    case-insensitive unless --case-sensitive; label = record type, kb_id =
    entity id. Docs also get doc.spans["weak"] and user_data["silver"]; train
    on them next to gold with `spacy_llm_ner.silver_corpus.v1`."""
    start = time.perf_counter()
    import spacy
    from spacy.tokens import DocBin

    from ..kb.knowledge_base import LinkerKB
    from ..kb.readers import read_records
    from ..training.weak import DEFAULT_STOPLIST, WeakLabeler, name_words
    from ..training.weak_io import read_raw_docs, read_stoplist, records_from_docs

    nlp = spacy.blank(lang)
    words = [] if no_default_stoplist else list(DEFAULT_STOPLIST)
    try:
        if stoplist is not None:
            words += read_stoplist(stoplist)
        if kb_path.is_dir():
            kb = LinkerKB.load(kb_path, nlp.vocab)
            records = (kb.entity(entity_id) for entity_id in kb.entity_ids)
        else:
            records = read_records(kb_path, fmt=fmt, strip_prefix=strip_prefix)
        if open_name_words and not partial_outside:
            msg.fail("--open-name-words needs --partial-outside", exits=1)
        extra = [r for path in names_from for r in records_from_docs(_read_docs(path, nlp))]
        labeler = WeakLabeler(
            records, types=types or None, stoplist=words, min_length=min_length,
            case_sensitive=case_sensitive, missing_outside=missing_outside, partial_outside=partial_outside,
            abbreviations=abbreviations, extra_records=extra,
        )
        if not labeler.n_entities:
            only = f" of type {', '.join(types)}" if types else ""
            msg.fail(f"{kb_path}: no KB records{only}", exits=1)
        msg.info(
            f"{labeler.n_entities} entities, {len(labeler)} names ({labeler.n_ambiguous_keys} shared by several "
            f"entities, {labeler.n_short} shorter than {min_length} left out)"
        )
        if names_from:
            msg.info(
                f"{len(extra)} entities from {', '.join(map(str, names_from))}: {labeler.n_extra_entities} new, "
                "the rest left out by --types or merged into the KB entity of the same id"
            )
        if open_name_words:
            # A first pass over the text: the words' frequencies there.
            labeler.open_words = name_words(
                labeler, read_raw_docs(raw_path, nlp), nlp.tokenizer, min_ratio=open_name_words
            )
            msg.info(f"{len(labeler.open_words)} name words left open (ratio >= {open_name_words:g})")
        out = DocBin(store_user_data=True)
        for doc in labeler.pipe(read_raw_docs(raw_path, nlp)):
            out.add(doc)
    except (ValueError, OSError) as err:
        # KBFormatError and raw-text errors name the file, line and field.
        msg.fail(str(err), exits=1)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    out.to_disk(output_path)
    stats = labeler.stats
    msg.good(f"Wrote {output_path} in {time.perf_counter() - start:.1f}s")
    msg.info(
        f"{stats.docs} docs, {stats.docs_with_mentions} with mentions; "
        f"{sum(stats.mentions.values())} mentions, {stats.ambiguous} ambiguous"
    )
    if stats.mentions:
        msg.table(sorted(stats.mentions.items(), key=lambda kv: -kv[1]), header=("Type", "Mentions"), divider=True)
    n_hits = sum(stats.stoplist_hits.values())
    top = ", ".join(f"{k} ({v})" for k, v in stats.stoplist_hits.most_common(5))
    msg.info(f"{n_hits} stop-list hits skipped" + (f": {top}" if top else ""))


def _read_docs(path: Path, nlp: Language) -> List[Doc]:
    from spacy.tokens import DocBin

    try:
        return list(DocBin().from_disk(path).get_docs(nlp.vocab))
    except Exception as err:  # msgpack / zlib errors say nothing of the file
        raise ValueError(f"{path}: not a readable .spacy file ({type(err).__name__}: {err})") from None
