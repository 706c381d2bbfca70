"""An `annotate` job: check everything before work starts, plan the parts,
skip the finished ones (--resume), hand the rest to an engine, record each
finished part in the manifest, and at the end check that every input doc is
in the output exactly once.
"""
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from .engines import get_engine
from .inputs import Part, find_shards, plan_parts, read_part, require_pyarrow
from .output import Manifest, PartStats, collect_errors, finished_keys, output_ids, read_manifest
from .worker import Options


class AnnotateError(ValueError):
    """A problem found before any work starts (bad input, model or output)."""


class Summary(NamedTuple):
    """What a job did.

    docs (int): Docs annotated (all finished parts, this run and earlier ones).
    words (int): Their tokens.
    entities (int): Their entities.
    links (int): Entities linked to a KB id.
    errors (int): Docs in the errors file.
    parts (int): Parts in the plan.
    parts_run (int): Parts done by this run (the rest were finished already).
    wall_s (float): This run's wall time.
    first_output_s (float): Seconds until the first part was finished (start-up included).
    verified (bool): Every input id is in the output exactly once.
    missing (List[str]): Input ids not in the output (a few).
    repeated (List[str]): Ids in the output more often than in the input (a few).
    """

    docs: int
    words: int
    entities: int
    links: int
    errors: int
    parts: int
    parts_run: int
    wall_s: float
    first_output_s: float
    verified: bool
    missing: List[str]
    repeated: List[str]


def check_model(model: str) -> None:
    """Check that a pipeline directory is there (before any work starts).

    model (str): The pipeline directory.
    RAISES (AnnotateError): If it or its config.cfg is missing.
    """
    path = Path(model)
    if not path.is_dir():
        raise AnnotateError(f"Model not found: {model} (expected a pipeline directory saved with nlp.to_disk)")
    if not (path / "config.cfg").exists():
        raise AnnotateError(f"{model}: not a spaCy pipeline directory (no config.cfg)")


def plan(input_path: str, output: Path, *, part_size: int, resume: bool) -> List[Part]:
    """Check the input and output and split the input into parts.

    input_path (str): The INPUT argument.
    output (Path): The output folder.
    part_size (int): Docs per part.
    resume (bool): Continue a job whose output folder has a manifest.
    RETURNS (List[Part]): All the parts of the input.
    RAISES (AnnotateError): On a bad input file (named) or an output folder
        that holds a manifest while resume is off.
    """
    try:
        require_pyarrow()
        shards = find_shards(input_path)
    except (ValueError, ImportError) as err:
        raise AnnotateError(str(err)) from err
    if not resume and read_manifest(output):
        raise AnnotateError(f"{output} holds an earlier job's output: use --resume to continue it, or another folder")
    return plan_parts(shards, part_size=part_size)


def verify(parts: List[Part], output: Path, *, max_chars: int, shown: int = 5) -> Dict[str, Any]:
    """Compare the input ids with the ids in the output (rows and errors).

    parts (List[Part]): All the parts of the input.
    output (Path): The output folder.
    max_chars (int): As in the job (read_part needs it).
    shown (int): How many problem ids to keep.
    RETURNS (Dict[str, Any]): verified, missing and repeated ids.
    """
    expected = Counter(r.id for part in parts for r in read_part(part, max_chars=max_chars))
    done = finished_keys(output)
    found = Counter(output_ids(output, [p.key for p in parts if p.key in done]))
    missing = [i for i, n in expected.items() if found[i] < n]
    repeated = [i for i, n in found.items() if n > expected[i]]
    return {"verified": not missing and not repeated, "missing": missing[:shown], "repeated": repeated[:shown]}


def annotate(
    model: str,
    input_path: str,
    output: Path,
    *,
    engine: str = "local",
    workers: int = 1,
    address: Optional[str] = None,
    resume: bool = False,
    part_size: int = 1000,
    options: Optional[Dict[str, Any]] = None,
    on_part: Optional[Callable[[PartStats], None]] = None,
    stop_after: Optional[int] = None,
) -> Summary:
    """Annotate INPUT with the pipeline MODEL into the folder OUTPUT.

    model (str): The pipeline directory (every worker must be able to read it).
    input_path (str): A .txt/.jsonl/.parquet file, a folder or a glob.
    output (Path): The output folder.
    engine (str): "local", "dask" or "ray".
    workers (int): Processes (local: n_process; otherwise workers of a local cluster).
    address (Optional[str]): An existing cluster to join.
    resume (bool): Skip the parts the manifest lists as finished.
    part_size (int): Docs per part (the unit of work, output and resume).
    options (Optional[Dict[str, Any]]): Further worker Options (batch_size,
        max_chars, top_candidates, docbin, threads).
    on_part (Optional[Callable[[PartStats], None]]): Called after each part
        is recorded (the progress bar).
    stop_after (Optional[int]): Stop after this many parts (an interrupted
        job, for tests).
    RETURNS (Summary): The figures and the verification.
    RAISES (AnnotateError): Before any work, on a bad input, model or output.
    """
    start = time.perf_counter()
    try:
        run_parts = get_engine(engine)
    except (ValueError, ImportError) as err:
        raise AnnotateError(str(err)) from err
    check_model(model)
    output = Path(output)
    parts = plan(input_path, output, part_size=part_size, resume=resume)
    worker_options = Options(model=str(Path(model).resolve()), output=str(output.resolve()), **(options or {}))
    done = finished_keys(output) if resume else set()
    todo = [p for p in parts if p.key not in done]
    manifest = Manifest(output)
    first_output, n_run = 0.0, 0
    stream = run_parts(todo, worker_options, workers=workers, address=address)
    try:
        for stats in stream:
            manifest.add(stats)
            n_run += 1
            first_output = first_output or time.perf_counter() - start
            if on_part is not None:
                on_part(stats)
            if stop_after is not None and n_run >= stop_after:
                break
    finally:
        stream.close()  # the engine shuts down a cluster it started
    return _summary(parts, output, n_run, worker_options, start=start, first_output=first_output)


def _summary(
    parts: List[Part], output: Path, parts_run: int, options: Options, *, start: float, first_output: float
) -> Summary:
    keys = {p.key for p in parts}
    # The last line of a part counts (a part redone after a crash was recorded twice).
    entries = {e["key"]: e for e in read_manifest(output) if e["key"] in keys}
    check = verify(parts, output, max_chars=options.max_chars) if len(entries) == len(keys) else {
        "verified": False, "missing": [], "repeated": []}
    n_errors = collect_errors(output, [p.key for p in parts if p.key in entries])
    total = lambda field: sum(e[field] for e in entries.values())  # noqa: E731
    return Summary(
        docs=total("docs"), words=total("words"), entities=total("entities"), links=total("links"),
        errors=n_errors, parts=len(parts), parts_run=parts_run, wall_s=time.perf_counter() - start,
        first_output_s=first_output, **check,
    )
