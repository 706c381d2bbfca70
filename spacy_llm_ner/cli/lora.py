"""`merge-lora`: fold a trained pipeline's LoRA adapters into its
transformer's weights, for prediction at the speed of a plain backbone."""
from pathlib import Path
from typing import List

import spacy
import typer
from spacy.language import Language
from wasabi import msg

from ..ml.lora import remove_lora
from . import app
from .quantize import transformer_components


def merge_lora_pipeline(nlp: Language) -> List[str]:
    """Merge the LoRA adapters of every transformer component of a loaded
    pipeline in place and set `lora = null` in its config block (other
    settings kept), so that the saved pipeline loads as a plain backbone
    with the same predictions.

    nlp (Language): A trained pipeline.
    RETURNS (List[str]): The names of the merged components.
    """
    adapted = [
        (name, proc) for name, proc in transformer_components(nlp)
        if nlp.get_pipe_config(name).get("model", {}).get("lora")
    ]
    if not adapted:
        raise ValueError(f"No transformer component of the pipeline {nlp.pipe_names} has LoRA adapters (`lora`).")
    for name, proc in adapted:
        block = nlp.get_pipe_config(name)["model"]
        if block.get("quantize"):
            raise ValueError(f"Component {name!r} is quantized: its adapters were merged when it was quantized.")
    for name, proc in adapted:
        remove_lora(proc.model)
        # Only the one key changes: the saved config keeps its ${vars...}.
        nlp.get_pipe_config(name)["model"]["lora"] = None
    return [name for name, _ in adapted]


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
    nlp = spacy.load(in_model)
    try:
        names = merge_lora_pipeline(nlp)
    except ValueError as err:
        msg.fail(str(err), exits=1)
    nlp.to_disk(out_model)
    msg.good(f"Merged the LoRA adapters of {', '.join(names)}: saved to {out_model}")
