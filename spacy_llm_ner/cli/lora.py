"""`merge-lora`: fold a trained pipeline's LoRA adapters into its
transformer's weights, for prediction at the speed of a plain backbone."""
import importlib
from pathlib import Path
from typing import Any

import typer
from wasabi import msg

from . import app


def __getattr__(name: str) -> Any:
    # The library function lived here: re-exported for old imports, on first
    # use (PEP 562), so that the CLI starts without torch.
    if name == "merge_lora_pipeline":
        return importlib.import_module("..ml.rewrite", __package__).merge_lora_pipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@app.command("merge-lora")
def merge_lora_cli(
    in_model: Path = typer.Argument(..., metavar="IN_MODEL", exists=True, file_okay=False, help="Trained pipeline directory"),
    out_model: Path = typer.Argument(..., metavar="OUT_MODEL", file_okay=False, help="Where to save the merged pipeline"),
) -> None:
    """Merge a pipeline's LoRA adapters into its transformer weights and save
    it: same predictions, no adapter layers left to slow prediction. The
    result loads with spacy.load, trains on as a fully fine-tunable
    backbone, and can still be quantized."""
    if out_model.resolve() == in_model.resolve():
        msg.fail("OUT_MODEL must differ from IN_MODEL (the adapted pipeline is kept)", exits=1)
    import spacy

    from ..ml.rewrite import merge_lora_pipeline

    nlp = spacy.load(in_model)
    try:
        names = merge_lora_pipeline(nlp)
    except ValueError as err:
        msg.fail(str(err), exits=1)
    nlp.to_disk(out_model)
    msg.good(f"Merged the LoRA adapters of {', '.join(names)}: saved to {out_model}")
