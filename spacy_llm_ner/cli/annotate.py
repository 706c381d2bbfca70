"""`annotate`: run a pipeline over a corpus into a folder of Parquet shards,
on this machine or an existing Ray / Dask cluster (library: `annotate/`)."""
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from ..annotate.engines import ENGINES
from . import app


@app.command("annotate")
def annotate_cli(
    model: str = typer.Argument(..., help="Pipeline directory (every worker must be able to read it)"),
    input_path: str = typer.Argument(..., help=".txt (a doc per line), .jsonl, .parquet, a folder or a glob"),
    output: Path = typer.Argument(..., help="Output folder (Parquet parts, manifest, errors.jsonl)"),
    engine: str = typer.Option("local", "--engine", "-e", help=f"One of {', '.join(ENGINES)}"),
    workers: int = typer.Option(
        1, "--workers", "-w", help="Processes: nlp.pipe's n_process, or the local cluster's workers"
    ),
    address: Optional[str] = typer.Option(
        None, "--address", help="Join an existing cluster (Dask scheduler or Ray address)"
    ),
    resume: bool = typer.Option(False, "--resume", help="Skip the parts the manifest lists as finished"),
    part_size: int = typer.Option(1000, "--part-size", help="Docs per part (unit of work, output and resume)"),
    batch_size: int = typer.Option(64, "--batch-size", help="nlp.pipe batch size"),
    max_chars: int = typer.Option(1_000_000, "--max-chars", help="Longer docs go to the errors file"),
    top_candidates: int = typer.Option(0, "--top-candidates", help="Linker candidates kept per entity"),
    docbin: bool = typer.Option(False, "--docbin", help="Also write .spacy files"),
    threads: int = typer.Option(1, "--threads", help="Torch threads per worker process (0: torch's default)"),
) -> None:
    """Annotate a corpus: a Parquet row per doc (id, metadata, entities with
    scores and KB links), resumable, every input doc in the output once."""
    # spaCy is imported when the command runs (see cli/__init__.py).
    from ..annotate import AnnotateError, annotate
    from ..annotate.inputs import find_shards, plan_parts
    from ..annotate.output import finished_keys
    from ..annotate.progress import Progress

    options = dict(
        batch_size=batch_size, max_chars=max_chars, top_candidates=top_candidates, docbin=docbin, threads=threads
    )
    try:
        done = finished_keys(output) if resume else set()
        todo = [p for p in plan_parts(find_shards(input_path), part_size=part_size) if p.key not in done]
    except (ValueError, ImportError) as err:
        msg.fail(str(err), exits=1)
    progress = Progress(todo)
    try:
        summary = annotate(
            model, input_path, output, engine=engine, workers=workers, address=address, resume=resume,
            part_size=part_size, options=options, on_part=progress,
        )
    except (AnnotateError, ImportError) as err:  # before any work: one line, no traceback
        msg.fail(str(err), exits=1)
    finally:
        progress.close()
    msg.table(
        [("docs", f"{summary.docs:,}"), ("words", f"{summary.words:,}"), ("entities", f"{summary.entities:,}"),
         ("links", f"{summary.links:,}"), ("errors", f"{summary.errors:,}"),
         ("parts", f"{summary.parts_run} run, {summary.parts - summary.parts_run} already done"),
         ("wall time", f"{summary.wall_s:.1f} s"), ("words/s", f"{summary.words / max(summary.wall_s, 1e-9):,.0f}")],
        title="annotate",
    )
    if not summary.verified:
        msg.fail(f"Output incomplete: missing {summary.missing}, repeated {summary.repeated}", exits=1)
    msg.good(f"Verified: every input doc is in {output} exactly once (errors: {output / 'errors.jsonl'})")
