"""What runs on a worker: load the pipeline (once per process) and turn a
part into its output files. Every engine calls `run_part`; they differ only
in where and how often it runs.
"""
import os
import socket
import time
from pathlib import Path
from typing import Dict, NamedTuple, Optional

from spacy.language import Language

from .inputs import Part, read_part
from .output import PartStats, write_part
from .rows import Annotated, annotate_records, count_links

_PIPELINES: Dict[str, Language] = {}


class Options(NamedTuple):
    """What a worker needs besides the part (picklable, sent to every task).

    model (str): The pipeline directory (a path every worker can read).
    output (str): The output folder (shared by the workers and the driver).
    batch_size (int): nlp.pipe's batch size.
    max_chars (int): Longer docs go to the errors.
    top_candidates (int): Candidates kept per entity.
    docbin (bool): Also write .spacy files.
    threads (int): Torch threads per worker (0: leave as it is).
    """

    model: str
    output: str
    batch_size: int = 64
    max_chars: int = 1_000_000
    top_candidates: int = 0
    docbin: bool = False
    threads: int = 1


def set_threads(threads: int) -> None:
    """Set torch's thread count, when torch is there and threads > 0.

    threads (int): Threads per worker process.
    """
    if threads <= 0:
        return
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def load_pipeline(options: Options) -> Language:
    """The pipeline, loaded once per process (later calls reuse it).

    options (Options): The job's options.
    RETURNS (Language): The pipeline.
    """
    if options.model not in _PIPELINES:
        import spacy

        set_threads(options.threads)
        _PIPELINES[options.model] = spacy.load(options.model)
    return _PIPELINES[options.model]


def worker_name() -> str:
    """This process, as host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_part(part: Part, options: Options, nlp: Optional[Language] = None) -> PartStats:
    """Annotate a part and write its files.

    part (Part): The part.
    options (Options): The job's options.
    nlp (Optional[Language]): The pipeline; None loads it (once per process).
    RETURNS (PartStats): The part's figures.
    """
    start = time.perf_counter()
    nlp = nlp if nlp is not None else load_pipeline(options)
    records = read_part(part, max_chars=options.max_chars)
    annotated = annotate_records(nlp, records, batch_size=options.batch_size, top_candidates=options.top_candidates)
    return finish_part(part, annotated, options, start=start)


def finish_part(part: Part, annotated: Annotated, options: Options, *, start: float) -> PartStats:
    """Write an annotated part and count what it holds.

    part (Part): The part.
    annotated (Annotated): Its rows, errors and docs.
    options (Options): The job's options.
    start (float): When work on it started (time.perf_counter).
    RETURNS (PartStats): The part's figures.
    """
    write_part(Path(options.output), part.key, annotated.rows, annotated.errors, annotated.docs, docbin=options.docbin)
    n_ents, n_links = count_links(annotated.rows)
    words = sum(row["n_words"] for row in annotated.rows)
    return PartStats(
        part.key, len(annotated.rows), words, n_ents, n_links, len(annotated.errors), worker_name(),
        time.perf_counter() - start,
    )
