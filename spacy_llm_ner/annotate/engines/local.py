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


def run_parts(
    parts: List[Part], options: Options, *, workers: int, address: Optional[str] = None
) -> Iterator[PartStats]:
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
    nlp.set_error_handler(_ignore)
    # Children inherit the parent's torch threads: one each, as the other engines' workers.
    set_threads(options.threads)
    try:
        yield from _PartStream(nlp, parts, options).run(n_process=n_process)
    finally:
        nlp.set_error_handler(raise_error)


class _PartStream:
    """The parts' docs as one nlp.pipe stream, and the parts written as the
    stream leaves them behind (it keeps the input order).

    nlp (Language): The pipeline.
    parts (List[Part]): The parts.
    options (Options): The job's options.
    """

    def __init__(self, nlp: Language, parts: List[Part], options: Options) -> None:
        self.nlp, self.parts, self.options = nlp, parts, options
        self.records: Dict[int, List[Record]] = {}
        self.done: Dict[int, List[Tuple[Doc, int]]] = {}

    def items(self) -> Iterator[Tuple[str, Tuple[int, int]]]:
        """(text, (part, record)) of every doc to process, parts read lazily."""
        for p, part in enumerate(self.parts):
            self.records[p] = read_part(part, max_chars=self.options.max_chars)
            self.done[p] = []
            for i, record in enumerate(self.records[p]):
                if record.problem is None:
                    yield record.text, (p, i)

    def run(self, *, n_process: int) -> Iterator[PartStats]:
        """Run the stream.

        n_process (int): nlp.pipe's n_process.
        YIELDS (PartStats): Each part's figures, in order.
        """
        next_part, start = 0, time.perf_counter()
        options = self.options
        stream = self.nlp.pipe(self.items(), as_tuples=True, batch_size=options.batch_size, n_process=n_process)
        for doc, (p, i) in stream:
            while next_part < p:
                # A part's time: from the end of the one before (its share of the workers' time).
                yield self.finish(next_part, start=start)
                next_part, start = next_part + 1, time.perf_counter()
            self.done[p].append((doc, i))
        while next_part < len(self.parts):
            yield self.finish(next_part, start=start)
            next_part, start = next_part + 1, time.perf_counter()

    def finish(self, p: int, *, start: float) -> PartStats:
        """Write a part the stream has left behind.

        p (int): The part's index.
        start (float): When work on it started.
        RETURNS (PartStats): Its figures.
        """
        if p not in self.records:  # not read yet: a part with nothing the stream needed
            self.records[p], self.done[p] = read_part(self.parts[p], max_chars=self.options.max_chars), []
        pairs = self.done.pop(p)
        # The docs a failed batch took with it are redone here, one at a
        # time, where a failure must raise (to be recorded with its reason).
        self.nlp.set_error_handler(raise_error)
        try:
            annotated = annotate_records(
                self.nlp, self.records.pop(p), batch_size=self.options.batch_size,
                top_candidates=self.options.top_candidates, pipe=lambda _items: pairs,
            )
        finally:
            self.nlp.set_error_handler(_ignore)
        return finish_part(self.parts[p], annotated, self.options, start=start)
