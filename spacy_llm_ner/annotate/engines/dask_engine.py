"""`--engine dask`: Dask distributed futures, a task per part.

A worker plugin loads the pipeline once per worker process when the worker
starts (and again in a worker the nanny restarts); the scheduler balances the
parts (work stealing) and reruns those a dead worker held (up to its
`distributed.scheduler.allowed-failures`). With no address a LocalCluster of
`workers` processes, one thread each, is started on this machine, its workers
forked from this process with the pipeline already loaded (see `connect`).
"""
import multiprocessing
from typing import Any, Iterator, List, Optional

from ..inputs import Part
from ..output import PartStats
from ..worker import Options, load_pipeline, run_part

PLUGIN_NAME = "spacy-llm-ner-pipeline"


def require_distributed() -> Any:
    """Import dask.distributed, or say which extra installs it.

    RETURNS (module): distributed.
    RAISES (ImportError): If it is not installed.
    """
    try:
        import distributed
    except ImportError as err:
        raise ImportError("--engine dask needs dask.distributed: pip install 'spacy-llm-ner[dask]'") from err
    return distributed


def make_plugin(options: Options) -> Any:
    """A worker plugin that loads the pipeline when a worker starts.

    options (Options): The job's options.
    RETURNS (distributed.WorkerPlugin): The plugin.
    """
    distributed = require_distributed()

    class PipelinePlugin(distributed.WorkerPlugin):
        name = PLUGIN_NAME

        def setup(self, worker: Any) -> None:
            load_pipeline(options)

    return PipelinePlugin()


def _task(part: Part, options: Options) -> PartStats:
    # The pipeline is the one the plugin loaded in this process.
    return run_part(part, options)


def connect(options: Options, *, workers: int, address: Optional[str]) -> Any:
    """A client of the user's cluster, or of a new local one.

    A local cluster's workers are forked from this process after it has
    loaded the pipeline (where the OS can fork): they start at once, without
    importing torch and loading the model again (measured: 10 s against 25 s
    for two workers on 2 cores), and share the model's pages with this
    process until they write to them. A worker the nanny restarts is forked
    the same way.

    options (Options): The job's options.
    workers (int): Worker processes of a local cluster.
    address (Optional[str]): A scheduler address (tcp://host:8786), or None.
    RETURNS (distributed.Client): The client (closing it closes a local cluster).
    """
    distributed = require_distributed()
    if address:
        return distributed.Client(address)
    import dask

    method = "spawn"
    if "fork" in multiprocessing.get_all_start_methods():
        load_pipeline(options)
        method = "fork"
    with dask.config.set({"distributed.worker.multiprocessing-method": method}):
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = distributed.Client(cluster)
    # Closing the client closes the cluster it started.
    client._start_cluster = cluster  # noqa: SLF001 - kept alive with the client
    return client


def run_parts(
    parts: List[Part], options: Options, *, workers: int, address: Optional[str] = None
) -> Iterator[PartStats]:
    """Annotate parts on a Dask cluster.

    parts (List[Part]): The parts to do.
    options (Options): The job's options.
    workers (int): Worker processes of a local cluster (no address).
    address (Optional[str]): The scheduler of an existing cluster.
    YIELDS (PartStats): Each part's figures, as they finish.
    """
    distributed = require_distributed()
    client = connect(options, workers=workers, address=address)
    try:
        client.register_plugin(make_plugin(options), name=PLUGIN_NAME)
        futures = client.map(_task, parts, options=options, pure=False, retries=2)
        for future in distributed.as_completed(futures):
            yield future.result()
    finally:
        cluster = getattr(client, "_start_cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()
