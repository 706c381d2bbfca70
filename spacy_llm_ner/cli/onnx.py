"""`export-onnx`: run a trained pipeline's transformer on onnxruntime."""
from pathlib import Path

import typer
from wasabi import msg

from ..ml.methods import DEFAULT_ONNX_QUANTIZE, ONNX_QUANTIZE_METHODS
from . import app
from .quantize import print_sizes


@app.command("export-onnx")
def export_onnx_cli(
    in_model: Path = typer.Argument(..., metavar="IN_MODEL", exists=True, file_okay=False, help="Trained pipeline directory"),
    out_model: Path = typer.Argument(..., metavar="OUT_MODEL", file_okay=False, help="Where to save the ONNX pipeline"),
    int8: bool = typer.Option(False, "--int8", help="Quantize the graph's weights to int8 (onnxruntime, dynamic)"),
    method: str = typer.Option(
        DEFAULT_ONNX_QUANTIZE, "--method", "-m", help=f"int8 method with --int8: {', '.join(ONNX_QUANTIZE_METHODS)}"
    ),
) -> None:
    """Export a pipeline's transformer to ONNX (fp32, or int8 with --int8)
    and save the pipeline; it loads with spacy.load and predicts with
    onnxruntime (`pip install 'spacy-llm-ner[onnx]'`). LoRA adapters are
    merged. Prints the size on disk before and after."""
    if out_model.resolve() == in_model.resolve():
        msg.fail("OUT_MODEL must differ from IN_MODEL (the torch pipeline is kept)", exits=1)
    import spacy

    from ..ml.onnx_export import onnx_pipeline

    nlp = spacy.load(in_model)
    quantize = method if int8 else None
    try:
        names = onnx_pipeline(nlp, quantize=quantize)
    except (ImportError, ValueError) as err:
        msg.fail(str(err), exits=1)
    nlp.to_disk(out_model)
    msg.good(f"Exported {', '.join(names)} to ONNX ({quantize or 'fp32'}): saved to {out_model}")
    print_sizes(in_model, out_model, label=quantize or "fp32")
