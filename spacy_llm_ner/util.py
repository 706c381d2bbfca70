"""Process-level fixes that every pipeline with a torch backbone needs."""
import os
import sys

_FORK_GUARD_INSTALLED = False


def _one_thread_per_worker() -> None:
    # Workers share the cores: one torch thread and one BLAS thread each.
    # torch only if the parent had imported it: importing it in every forked
    # worker of a pipeline without a transformer would cost seconds.
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    # Imported here: the package imports util first, and ml/ pulls in spaCy.
    from .ml.ops import limit_blas_threads_in_child

    limit_blas_threads_in_child()


def install_fork_guard() -> None:
    """Make `nlp.pipe(n_process=N)` safe with torch on Linux.

    spaCy forks its workers. A CPU build of torch runs its ops on a GNU
    OpenMP pool, which does not survive fork: the child's first parallel op
    waits forever for threads that only existed in the parent. Setting the
    child to one torch thread makes torch skip the pool, and one thread per
    worker process is what multi-process annotation wants anyway.
    """
    global _FORK_GUARD_INSTALLED
    if not _FORK_GUARD_INSTALLED and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_one_thread_per_worker)
        _FORK_GUARD_INSTALLED = True
