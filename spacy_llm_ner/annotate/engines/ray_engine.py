"""`--engine ray`: Ray Data, `map_batches` over the parts with an actor pool.

Each actor loads the pipeline once, in its constructor; Ray Data streams the
parts to the pool, restarts an actor that dies and retries its batch. With no
address a local Ray instance of `workers` CPUs is started on this machine.
"""
import logging
from typing import Any, Dict, Iterator, List, Optional

from ..inputs import Part, Shard
from ..output import PartStats
from ..worker import Options, load_pipeline, run_part


def require_ray() -> Any:
    """Import ray and ray.data, or say which extra installs them.

    RETURNS (module): ray.
    RAISES (ImportError): If it is not installed.
    """
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise ImportError("--engine ray needs Ray Data: pip install 'spacy-llm-ner[ray]'") from err
    return ray


def _item(part: Part) -> Dict[str, Any]:
    return {"path": part.shard.path, "name": part.shard.name, "n_records": part.shard.n_records,
            "start": part.start, "stop": part.stop}


class PartAnnotator:
    """The actor class: the pipeline loaded once, a part per row.

    options (Options): The job's options.
    """

    def __init__(self, options: Options) -> None:
        self.options = options
        load_pipeline(options)

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, List[Any]]:
        out: Dict[str, List[Any]] = {field: [] for field in PartStats._fields}
        for i in range(len(batch["path"])):
            shard = Shard(str(batch["path"][i]), str(batch["name"][i]), int(batch["n_records"][i]))
            stats = run_part(Part(shard, int(batch["start"][i]), int(batch["stop"][i])), self.options)
            for field, value in stats._asdict().items():
                out[field].append(value)
        return out


def run_parts(
    parts: List[Part], options: Options, *, workers: int, address: Optional[str] = None
) -> Iterator[PartStats]:
    """Annotate parts with Ray Data.

    parts (List[Part]): The parts to do.
    options (Options): The job's options.
    workers (int): Actors (and the CPUs of a local instance).
    address (Optional[str]): An existing cluster ("auto", "ray://host:10001", host:port).
    YIELDS (PartStats): Each part's figures, as they finish.
    """
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # ours counts docs, not blocks
        context.print_on_execution_start = False
        dataset = ray.data.from_items([_item(p) for p in parts], override_num_blocks=max(1, len(parts)))
        annotated = dataset.map_batches(
            PartAnnotator,
            fn_constructor_kwargs={"options": options},
            batch_size=1,
            # Ray Data restarts a dead actor and retries its batch (its default
            # for actor pools: max_restarts = max_task_retries = -1).
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
        )
        for row in annotated.iter_rows():
            yield PartStats(**{field: row[field] for field in PartStats._fields})
    finally:
        if started:
            ray.shutdown()
