"""Quantize a trained pipeline's transformer for CPU inference."""
from pathlib import Path
from typing import Any, Dict, List, Tuple

import spacy
import typer
from spacy.language import Language
from wasabi import msg

from ..ml.quantize import DEFAULT_METHOD, QUANTIZE_METHODS, quantize_model
from . import app

V3 = "spacy_llm_ner.TransformerModel.v3"
# Architectures whose arguments are a subset of TransformerModel.v3's, so the
# config block can be rewritten by changing its name.
REWRITABLE = (
    "spacy_llm_ner.TransformerModel.v1",
    "spacy_llm_ner.TransformerModel.v2",
    V3,
    "spacy-transformers.TransformerModel.v3",
)


def size_on_disk(path: Path) -> int:
    """Bytes of all files under a folder (or of one file).

    path (Path): A folder or file.
    RETURNS (int): The total size in bytes.
    """
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def transformer_components(nlp: Language) -> List[Tuple[str, Any]]:
    """The spacy-transformers `transformer` components of a pipeline.

    nlp (Language): The pipeline.
    RETURNS (List[Tuple[str, Any]]): (name, component) pairs.
    """
    from spacy_transformers import Transformer

    return [(name, proc) for name, proc in nlp.components if isinstance(proc, Transformer)]


def quantize_pipeline(nlp: Language, *, method: str = DEFAULT_METHOD) -> List[str]:
    """Quantize every transformer component of a loaded pipeline in place and
    rewrite its config block to TransformerModel.v3 with `quantize` set (other
    settings, LoRA included, kept), so that the saved pipeline loads
    quantized with `spacy.load`.

    nlp (Language): A trained pipeline.
    method (str): One of QUANTIZE_METHODS.
    RETURNS (List[str]): The names of the quantized components.
    """
    if method not in QUANTIZE_METHODS:
        raise ValueError(f"Unknown quantize method {method!r}: expected one of {list(QUANTIZE_METHODS)}.")
    found = transformer_components(nlp)
    if not found:
        raise ValueError(
            f"No `transformer` component in the pipeline {nlp.pipe_names}: only a shared spacy-transformers "
            "backbone can be quantized."
        )
    blocks: Dict[str, Any] = {}
    for name, _ in found:
        block = nlp.get_pipe_config(name).get("model", {})
        arch = block.get("@architectures")
        if arch not in REWRITABLE:
            raise ValueError(
                f"Component {name!r} uses the architecture {arch!r}; quantization supports {list(REWRITABLE)}."
            )
        if block.get("quantize"):
            raise ValueError(f"Component {name!r} is already quantized (quantize = {block['quantize']!r}).")
        blocks[name] = block
    for name, proc in found:
        quantize_model(proc.model, method)
        # The raw block keeps unresolved ${vars...} references: rewrite only
        # the two keys, so the saved config still reads like the trained one.
        blocks[name]["@architectures"] = V3
        blocks[name]["quantize"] = method
    return [name for name, _ in found]


@app.command("quantize")
def quantize_cli(
    in_model: Path = typer.Argument(..., metavar="IN_MODEL", exists=True, file_okay=False, help="Trained pipeline directory"),
    out_model: Path = typer.Argument(..., metavar="OUT_MODEL", file_okay=False, help="Where to save the quantized pipeline"),
    method: str = typer.Option(DEFAULT_METHOD, "--method", "-m", help=f"One of {', '.join(QUANTIZE_METHODS)}"),
) -> None:
    """Quantize a pipeline's transformer to int8 for CPU inference (Linear
    weights int8, LoRA adapters merged) and save it; the result loads with
    spacy.load. Prints the size on disk before and after."""
    if out_model.resolve() == in_model.resolve():
        msg.fail("OUT_MODEL must differ from IN_MODEL (the fp32 pipeline is kept)", exits=1)
    nlp = spacy.load(in_model)
    try:
        names = quantize_pipeline(nlp, method=method)
    except ValueError as err:
        msg.fail(str(err), exits=1)
    nlp.to_disk(out_model)
    before, after = size_on_disk(in_model), size_on_disk(out_model)
    msg.good(f"Quantized {', '.join(names)} ({method}): saved to {out_model}")
    msg.table(
        [("IN_MODEL", f"{before / 1e6:.1f}"), (f"OUT_MODEL ({method})", f"{after / 1e6:.1f}"),
         ("after / before", f"{after / max(before, 1):.2f}")],
        header=("", "MB on disk"),
        divider=True,
    )
