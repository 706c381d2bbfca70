"""`--engine local`: spaCy's own `nlp.pipe(n_process=N)` on this machine, no
extra dependency. One stream over all parts (the worker processes start
once); a part is written as soon as the stream has moved past it.
"""
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import raise_error

from ..inputs import Part, Record, read_part
from ..output import PartStats
from ..rows import annotate_records
from ..worker import Options, finish_part, load_pipeline, run_part, set_threads


def run_parts(parts: List[Part], options: Options, *, workers: int, address: Optional[str] = None) -> Iterator[PartStats]:
    """Annotate parts with nlp.pipe.

    parts (List[Part]): The parts to do.
    options (Options): The job's options.
    workers (int): nlp.pipe's n_process.
    address (Optional[str]): Must be None (there is no cluster to join).
    YIELDS (PartStats): Each part's figures, in order.
    """
    if address:
        raise ValueError("--address needs a distributed engine (--engine dask or ray), not --engine local")
    nlp = load_pipeline(options)
    if workers <= 1:
        for part in parts:
            yield run_part(part, options, nlp)
        return
    yield from _multiprocess(nlp, parts, options, n_process=workers)


def _ignore(name: Any, proc: Any, docs: Any, error: Exception) -> None:
    # A failed batch leaves the stream; its docs are redone one at a time
    # (annotate_records), so only the doc that fails is lost.
    return None


def _multiprocess(nlp: Language, parts: List[Part], options: Options, *, n_process: int) -> Iterator[PartStats]:
    records: Dict[int, List[Record]] = {}
    done: Dict[int, List[Tuple[Doc, int]]] = {}

    def items() -> Iterator[Tuple[str, Tuple[int, int]]]:
        for p, part in enumerate(parts):
            records[p] = read_part(part, max_chars=options.max_chars)
            done[p] = []
            for i, record in enumerate(records[p]):
                if record.problem is None:
                    yield record.text, (p, i)

    nlp.set_error_handler(_ignore)
    try:
        yield from _stream(nlp, parts, options, items(), records, done, n_process=n_process)
    finally:
        nlp.set_error_handler(raise_error)


def _stream(
    nlp: Language,
    parts: List[Part],
    options: Options,
    items: Iterator[Tuple[str, Tuple[int, int]]],
    records: Dict[int, List[Record]],
    done: Dict[int, List[Tuple[Doc, int]]],
    *,
    n_process: int,
) -> Iterator[PartStats]:
    # Children inherit the parent's torch threads: one each, as the other engines' workers.
    set_threads(options.threads)
    next_part, start = 0, time.perf_counter()
    stream = nlp.pipe(items, as_tuples=True, batch_size=options.batch_size, n_process=n_process)
    for doc, (p, i) in stream:
        while next_part < p:
            # A part's time: from the end of the one before (the stream's share of n_process workers).
            yield _finish(nlp, parts, next_part, records, done, options, start=start)
            next_part, start = next_part + 1, time.perf_counter()
        done[p].append((doc, i))
    while next_part < len(parts):
        yield _finish(nlp, parts, next_part, records, done, options, start=start)
        next_part, start = next_part + 1, time.perf_counter()


def _finish(
    nlp: Language,
    parts: List[Part],
    p: int,
    records: Dict[int, List[Record]],
    done: Dict[int, List[Tuple[Doc, int]]],
    options: Options,
    *,
    start: float,
) -> PartStats:
    if p not in records:  # a part with nothing to process (only problem records, read lazily)
        records[p], done[p] = read_part(parts[p], max_chars=options.max_chars), []
    pairs = done.pop(p)
    # The docs a failed batch took with it are redone here, one at a time,
    # where a failure must raise (to be recorded with its reason).
    nlp.set_error_handler(raise_error)
    try:
        annotated = annotate_records(
            nlp, records.pop(p), batch_size=options.batch_size, top_candidates=options.top_candidates,
            pipe=lambda _items: pairs,
        )
    finally:
        nlp.set_error_handler(_ignore)
    return finish_part(parts[p], annotated, options, start=start)
