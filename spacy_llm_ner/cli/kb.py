"""`build-kb`: validate a knowledge-base file and save it as a LinkerKB folder."""
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List

import typer
from wasabi import msg

# Pure Python: no spaCy, no numpy (the store's modules load when it is built).
from ..kb.readers import KB_FORMATS, read_records, resolve_format
from . import app

FORMATS = KB_FORMATS


@app.command("build-kb")
def build_kb_cli(
    input_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="KB file"),
    output_path: Path = typer.Argument(..., help="Folder to write the LinkerKB to"),
    fmt: str = typer.Option("auto", "--format", "-f", help=f"One of {', '.join(FORMATS)}"),
    strip_prefix: List[str] = typer.Option(
        [], "--strip-prefix", help="Id prefix to strip, e.g. MESH: (repeatable: --strip-prefix MESH: --strip-prefix OMIM:)"
    ),
    aliases_from: List[Path] = typer.Option(
        [], "--aliases-from", exists=True, dir_okay=False,
        help="A .spacy file whose gold-linked entities become aliases of their entity (repeatable)",
    ),
    alias_labels: List[str] = typer.Option([], "--alias-label", help="Only entities of this label (repeatable)"),
    strict: bool = typer.Option(False, "--strict", help="A file without a final newline (cut short?) is an error"),
    columns: str = typer.Option(
        "", "--columns", help="CSV/TSV without a header row: its columns in order, e.g. id,name,description"
    ),
    pseudo_count: float = typer.Option(
        1.0, "--pseudo-count",
        help="With --aliases-from: how many mentions an entity's dictionary names are worth in the priors",
    ),
    ngram_retrieval: str = typer.Option(
        "words+grams", "--ngram-retrieval",
        help="Candidates of the fuzzy stage through words+grams (default), words (several times faster on KBs "
        "of millions of names, misses some sub-word matches) or grams; saved with the KB",
    ),
    segment_size: int = typer.Option(
        0, "--segment-size", min=0,
        help="Build and write segments of this many entities one at a time (memory of one segment, not of the "
        "whole KB: for millions of entities, e.g. 1000000); 0: one segment",
    ),
    workers: int = typer.Option(
        1, "--workers", min=1,
        help="With --segment-size: segments built at once, each in a worker process (the same folder for any "
        "number; memory grows with it)",
    ),
) -> None:
    """Validate a KB file (errors name file, line and field) and save it as a
    LinkerKB folder, loadable with `spacy_llm_ner.load_kb.v1`. With
    --aliases-from, the gold mentions of annotated data are added as aliases
    (the mention names the corpus uses but the dictionary lacks) and the
    priors come from how often each text links to each entity: P(entity |
    alias) = c'(alias, entity) / sum over entities, the counts plus
    --pseudo-count for the dictionary's names of each entity."""
    start = time.perf_counter()
    from ..kb.cascade_config import CascadeConfig

    try:  # the settings' own check, before any work
        CascadeConfig(ngram_retrieval=ngram_retrieval)
    except ValueError as err:
        msg.fail(f"--ngram-retrieval: {err}", exits=1)
    # No spaCy here either (torch comes with it through thinc): only
    # --aliases-from imports it, to read its DocBins.
    from ..kb.mentions import add_mention_aliases, linked_labels, read_linked_mentions
    from ..kb.writer import write_kb

    if not pseudo_count > 0:
        msg.fail(f"--pseudo-count must be > 0 (got {pseudo_count:g})", exits=1)
    csv_options = _csv_options(input_path, fmt, columns)
    try:
        # Reader warnings (skipped records, a cut last line, stripped ids) shown like the rest.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            records = list(read_records(
                input_path, fmt=fmt, strip_prefix=strip_prefix[0] if strip_prefix else None,
                id_prefixes_to_strip=strip_prefix[1:], strict=strict, **csv_options,
            ))
    except ValueError as err:
        msg.fail(str(err), exits=1)
    for warning in caught:
        msg.warn(str(warning.message))
    if aliases_from:
        mentions = read_linked_mentions(aliases_from, labels=alias_labels)
        records, stats = add_mention_aliases(records, mentions, pseudo_count=pseudo_count)
        msg.info(
            f"Mention aliases: {stats.added} added, {stats.known} already names, "
            f"{stats.composite} with composite ids left out"
        )
        if stats.counted:
            msg.info(
                f"Priors from {stats.counted} mention counts over {stats.entities_counted} entities "
                f"(+ {pseudo_count:g} pseudo-count per entity for its dictionary names)"
            )
        if alias_labels and not stats.added + stats.known + stats.composite + sum(stats.unknown_ids.values()):
            found = linked_labels(aliases_from)
            msg.warn(
                f"No linked entity labelled {', '.join(alias_labels)} in {', '.join(map(str, aliases_from))}: "
                f"0 aliases added. Its linked entities are labelled: "
                f"{', '.join(f'{k} ({v})' for k, v in found.most_common()) or 'none (no entity has a kb_id)'}"
            )
        if stats.unknown_ids:
            n = sum(stats.unknown_ids.values())
            top = ", ".join(f"{k} ({v})" for k, v in sorted(stats.unknown_ids.items(), key=lambda kv: -kv[1])[:5])
            msg.warn(f"{n} mentions have ids not in the KB and were not added: {top}")
    # The folder LinkerKB.to_disk would write, without importing spaCy (and
    # through thinc, torch): seconds for nothing here.
    store = write_kb(
        records, output_path, ngram_retrieval=ngram_retrieval, segment_size=segment_size, workers=workers
    )
    n_aliases = sum(len(record.all_names()) for record in records)
    n_described = sum(bool(record.description) for record in records)
    msg.good(f"Wrote {output_path} in {time.perf_counter() - start:.1f}s")
    msg.info(f"{len(store)} entities, {n_aliases} names and aliases, {n_described} with a description")


def _csv_options(input_path: Path, fmt: str, columns: str) -> Dict[str, Any]:
    """The CSV reader's `columns` from --columns ("id,name,description"), or
    nothing when not given; exits naming the format when the file is not CSV/TSV.

    input_path (Path): The KB file. fmt (str): --format. columns (str): --columns.
    RETURNS (Dict[str, Any]): Options for `read_records`.
    """
    if not columns:
        return {}
    resolved = resolve_format(input_path, fmt)
    if resolved not in ("csv", "tsv"):
        msg.fail(
            f"--columns applies to CSV and TSV files only (this one reads as {resolved}; "
            "--format csv or --format tsv if it is one)", exits=1,
        )
    return {"columns": [c.strip() for c in columns.split(",")]}


@app.command("precompute-entities")
def precompute_entities_cli(
    in_model: Path = typer.Argument(..., metavar="IN_MODEL", exists=True, file_okay=False, help="Trained pipeline directory"),
    out_model: Path = typer.Argument(..., metavar="OUT_MODEL", file_okay=False, help="Where to save the pipeline"),
    dtype: str = typer.Option(
        "float32", "--dtype", help="Stored vectors: float32, or float16 (half the file and the mapped pages)"
    ),
) -> None:
    """Encode every KB entity of each transformer_entity_linker with its
    trained backbone and save the vectors with the pipeline: prediction then
    encodes no entity, from the first doc on."""
    import spacy

    from ..pipeline.entity_linker import TransformerEntityLinker

    nlp = spacy.load(in_model)
    linkers = [(name, pipe) for name, pipe in nlp.pipeline if isinstance(pipe, TransformerEntityLinker)]
    if not linkers:
        msg.fail(f"No transformer_entity_linker in the pipeline {nlp.pipe_names}", exits=1)
    for name, linker in linkers:
        start = time.perf_counter()
        try:
            n = linker.precompute_entities()
            linker.entity_encoder.set_dtype(dtype)
        except ValueError as err:
            msg.fail(str(err), exits=1)
        msg.good(f"{name}: {n:,} entities encoded in {time.perf_counter() - start:.0f} s")
    nlp.to_disk(out_model)
    msg.good(f"Saved to {out_model}")
