"""`quantize`: quantize a trained pipeline's transformer for CPU inference."""
import importlib
from pathlib import Path
from typing import Any

import typer
from wasabi import msg

from ..ml.methods import DEFAULT_METHOD, QUANTIZE_METHODS
from . import app

# The library functions lived here: re-exported for old imports, on first use
# (PEP 562), so that the CLI starts without torch.
_MOVED = ("V3", "quantize_pipeline", "size_on_disk", "transformer_components")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module("..ml.rewrite", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@app.command("quantize")
def quantize_cli(
    in_model: Path = typer.Argument(..., metavar="IN_MODEL", exists=True, file_okay=False, help="Trained pipeline directory"),
    out_model: Path = typer.Argument(..., metavar="OUT_MODEL", file_okay=False, help="Where to save the quantized pipeline"),
    method: str = typer.Option(DEFAULT_METHOD, "--method", "-m", help=f"One of {', '.join(QUANTIZE_METHODS)}"),
) -> None:
    """Quantize a pipeline's transformer for CPU inference and save it; the
    result loads with spacy.load. int8 methods: Linear weights int8, LoRA
    adapters merged. bf16: weights kept, prediction in bfloat16 on CPUs with
    AMX (fp32 elsewhere). Prints the size on disk before and after."""
    if out_model.resolve() == in_model.resolve():
        msg.fail("OUT_MODEL must differ from IN_MODEL (the fp32 pipeline is kept)", exits=1)
    import spacy

    from ..ml.rewrite import quantize_pipeline

    nlp = spacy.load(in_model)
    try:
        names = quantize_pipeline(nlp, method=method)
    except ValueError as err:
        msg.fail(str(err), exits=1)
    nlp.to_disk(out_model)
    msg.good(f"Quantized {', '.join(names)} ({method}): saved to {out_model}")
    print_sizes(in_model, out_model, label=method)


def print_sizes(in_model: Path, out_model: Path, *, label: str) -> None:
    """Print both pipelines' size on disk and their ratio (for the commands
    that rewrite a pipeline: quantize, export-onnx).

    in_model (Path): The pipeline read.
    out_model (Path): The pipeline written.
    label (str): What OUT_MODEL is (e.g. the method).
    """
    from ..ml.rewrite import size_on_disk

    before, after = size_on_disk(in_model), size_on_disk(out_model)
    msg.table(
        [("IN_MODEL", f"{before / 1e6:.1f}"), (f"OUT_MODEL ({label})", f"{after / 1e6:.1f}"),
         ("after / before", f"{after / max(before, 1):.2f}")],
        header=("", "MB on disk"),
        divider=True,
    )
