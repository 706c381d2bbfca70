"""The engines `annotate` can run on. Each module has
`run_parts(parts, options, *, workers, address) -> Iterator[PartStats]`, yielding
each part's figures once its files are written; the engine, not this package,
schedules the parts and retries the ones a dead worker had."""
import importlib
import importlib.util
from typing import Callable

ENGINES = {"local": "local", "dask": "dask_engine", "ray": "ray_engine"}
# What each engine needs beyond the core package, and the extra that installs it.
REQUIRES = {"dask": ("distributed", "dask"), "ray": ("ray", "ray")}


def get_engine(name: str) -> Callable:
    """The run_parts function of an engine.

    name (str): One of ENGINES.
    RETURNS (Callable): Its run_parts.
    RAISES (ValueError): If the name is unknown.
    RAISES (ImportError): If the engine is not installed (naming the extra).
    """
    if name not in ENGINES:
        raise ValueError(f"Unknown engine '{name}' (expected one of {', '.join(ENGINES)})")
    if name in REQUIRES and importlib.util.find_spec(REQUIRES[name][0]) is None:
        module, extra = REQUIRES[name]
        raise ImportError(f"--engine {name} needs {module}: pip install 'spacy-llm-ner[{extra}]'")
    return importlib.import_module(f"{__name__}.{ENGINES[name]}").run_parts
