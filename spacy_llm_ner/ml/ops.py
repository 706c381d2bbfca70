"""CPU matrix products through numpy's BLAS instead of thinc's bundled blis.

thinc's `NumpyOps` multiplies with the `blis` package, built for portability
and single-threaded. The BLAS that numpy ships with (OpenBLAS in the PyPI
wheels, Accelerate on macOS) is tuned per CPU and uses every core. On
BC5CDR, on this project's 2-core machine, the distilled CNN student runs at
22k words/s with blis and 45k with OpenBLAS, spaCy's stock CNN `ner` at 18k
and 32k (benchmarks/results/frontier_bc5cdr.md); a depth-2 student at 38k
with blis, 58k with OpenBLAS on one thread. Transformer backbones are
unaffected: torch does their products.

Used from a config, so that `spacy.load` and `spacy train` both pick it up:

    [nlp.after_pipeline_creation]
    @callbacks = "spacy_llm_ner.NumpyBLASOps.v1"
"""
from typing import Callable

from spacy.language import Language
from spacy.util import registry
from thinc.api import Model, NumpyOps

_NUMPY_BLAS_OPS = NumpyOps(use_blis=False)
_IN_USE = False


def use_numpy_blas(model: Model) -> int:
    """Make every node of a model that runs on thinc's blis-backed NumpyOps
    multiply through numpy instead. Other ops (GPU, Apple) are left alone.

    model (Model): A thinc model.
    RETURNS (int): The number of nodes changed.
    """
    global _IN_USE
    changed = 0
    for node in model.walk():
        if type(node.ops) is NumpyOps and node.ops.use_blis:
            node.ops = _NUMPY_BLAS_OPS
            changed += 1
    _IN_USE = _IN_USE or changed > 0
    return changed


@registry.callbacks("spacy_llm_ner.NumpyBLASOps.v1")
def make_numpy_blas_ops() -> Callable[[Language], Language]:
    """An `after_pipeline_creation` callback: every component's model
    multiplies through numpy's BLAS. Components added later with
    `nlp.add_pipe` keep blis.

    RETURNS (Callable[[Language], Language]): The callback.
    """

    def apply(nlp: Language) -> Language:
        for _, component in nlp.components:
            model = getattr(component, "model", None)
            if isinstance(model, Model):
                use_numpy_blas(model)
        return nlp

    return apply


def limit_blas_threads_in_child() -> None:
    """One BLAS thread per forked worker (`nlp.pipe(n_process=N)`): N
    workers with a thread per core each would oversubscribe the CPU."""
    if not _IN_USE:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # not a dependency: workers keep numpy's default
        return
    threadpool_limits(limits=1, user_api="blas")
