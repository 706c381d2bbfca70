"""`convert`: NER corpora (CoNLL IOB, PubTator, JSONL) to a ``.spacy`` DocBin.
The readers live in `spacy_llm_ner.corpora` (re-exported here)."""
from __future__ import annotations

import importlib
import warnings
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from wasabi import msg

from . import app

if TYPE_CHECKING:  # spaCy is imported when the command runs (see cli/__init__.py)
    from ..corpora import ConvertStats

# Re-exported for existing imports, on first use (PEP 562): the corpora
# import spaCy, which `--help` and the other commands must not wait for.
_RE_EXPORTED = (
    "FORMATS", "ConvertStats", "convert", "detect_format", "make_doc_with_boundaries", "read_conll", "read_docs",
    "read_jsonl", "read_pubtator",
)


def __getattr__(name: str) -> Any:
    if name in _RE_EXPORTED:
        return getattr(importlib.import_module("..corpora", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def print_stats(stats: ConvertStats) -> None:
    """Print a conversion summary with wasabi.

    stats (ConvertStats): The counts.
    """
    msg.info(
        f"{stats.docs} docs, {stats.sents} sentences, {stats.tokens} tokens, "
        f"{stats.n_entities} entities ({stats.with_kb_id} with a kb_id)"
    )
    if stats.entities:
        rows = [(label, count) for label, count in sorted(stats.entities.items())]
        msg.table(rows, header=("Label", "Entities"), divider=True, aligns=("l", "r"))
    for reason, count in sorted(stats.repaired.items()):
        msg.info(f"Repaired: {count} {reason}{_first(stats, reason)}")
    for reason, count in sorted(stats.skipped.items()):
        msg.warn(f"Not kept: {count} {reason}{_first(stats, reason)}")


def _first(stats: ConvertStats, reason: str) -> str:
    """ " (first: <example>)" where the reader noted one for `reason`, else ""."""
    example = stats.examples.get(reason)
    return f" (first: {example})" if example else ""


class OnError(str, Enum):
    raise_ = "raise"
    skip = "skip"
    skip_doc = "skip-doc"
    skip_mention = "skip-mention"


class Format(str, Enum):
    auto = "auto"
    conll = "conll"
    pubtator = "pubtator"
    jsonl = "jsonl"


@app.command("convert")
def convert_cli(
    input_path: Path = typer.Argument(
        ..., exists=True, dir_okay=False, metavar="INPUT", help="CoNLL, PubTator or JSONL file"
    ),
    output_path: Path = typer.Argument(..., dir_okay=False, metavar="OUTPUT", help="Output .spacy file"),
    fmt: Format = typer.Option(
        Format.auto, "--format", "-f", help="Input format (auto: by extension and content)"
    ),
    lang: str = typer.Option("en", "--lang", "-l", help="Language of the tokenizer"),
    n_sents: int = typer.Option(
        10, "--n-sents", "-n", min=1, help="CoNLL sentences per doc without -DOCSTART-"
    ),
    strict: bool = typer.Option(False, "--strict", help="A file without a final newline (cut short?) is an error"),
    keep_duplicates: bool = typer.Option(
        False, "--keep-duplicates", help="PubTator: keep every document with an already seen PMID (default: the first only)"
    ),
    on_error: OnError = typer.Option(
        OnError.raise_, "--on-error",
        help="PubTator, a mention that does not match its text (or bad offsets, empty type): raise; skip (= skip-doc: "
        "leave out its document, so that no entity is taught as a non-entity); skip-mention. Each skip is reported",
    ),
) -> None:
    """Convert NER annotations (CoNLL IOB, PubTator, JSONL) to a .spacy DocBin."""
    from ..corpora import convert

    try:
        # Reader warnings (a cut last line) shown with the summary.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stats = convert(
                input_path, output_path, fmt=fmt.value, lang=lang, n_sents=n_sents, strict=strict,
                keep_duplicates=keep_duplicates, on_error=on_error.value,
            )
    except ValueError as err:
        msg.fail("Conversion failed")
        typer.echo(str(err), err=True)  # unwrapped: it names a file and line
        raise typer.Exit(1)
    for warning in caught:
        msg.warn(str(warning.message))
    msg.good(f"Wrote {output_path}")
    print_stats(stats)
