"""Export a trained pipeline's transformer to ONNX (fp32 or dynamic int8)
and rewrite its config block, so that the saved pipeline loads on the
onnxruntime backend with `spacy.load` (`python -m spacy_llm_ner export-onnx`
is a thin wrapper). How the graph is made is in `ml/onnx_graph.py`, how it
runs in `ml/onnx_backend.py`.
"""
from typing import Any, Dict, List, Optional

from spacy.language import Language

from .onnx_backend import add_onnx_backend, swap_in_backbone
from .onnx_graph import ONNX_QUANTIZE_METHODS, require_onnx
from .rewrite import REWRITABLE, transformer_components

V4 = "spacy_llm_ner.TransformerModel.v4"


def _check_block(name: str, block: Dict[str, Any]) -> None:
    arch = block.get("@architectures")
    if arch not in (*REWRITABLE, V4):
        raise ValueError(f"Component {name!r} uses the architecture {arch!r}; export-onnx supports {[*REWRITABLE, V4]}.")
    if block.get("backend", "torch") != "torch":
        raise ValueError(f"Component {name!r} already runs on {block['backend']!r}.")
    if block.get("quantize"):
        raise ValueError(
            f"Component {name!r} is quantized for torch (quantize = {block['quantize']!r}): export the fp32 "
            "pipeline, with --int8 for an int8 graph."
        )


def onnx_pipeline(nlp: Language, *, quantize: Optional[str] = None) -> List[str]:
    """Replace the backbone of every transformer component of a loaded
    pipeline by its ONNX export, in place, and rewrite its config block to
    TransformerModel.v4 with backend = "onnxruntime" (LoRA adapters merged,
    `lora = null`; other settings and ${vars} kept), so that the saved
    pipeline loads on onnxruntime with `spacy.load`.

    nlp (Language): A trained pipeline (fp32 torch transformer).
    quantize (Optional[str]): None (fp32) or one of ONNX_QUANTIZE_METHODS.
    RETURNS (List[str]): The names of the exported components.
    """
    if quantize is not None and quantize not in ONNX_QUANTIZE_METHODS:
        raise ValueError(f"Unknown quantize method {quantize!r}: expected one of {list(ONNX_QUANTIZE_METHODS)}.")
    found = transformer_components(nlp)
    if not found:
        raise ValueError(
            f"No `transformer` component in the pipeline {nlp.pipe_names}: only a shared spacy-transformers "
            "backbone can be exported."
        )
    for name, _ in found:
        _check_block(name, nlp.get_pipe_config(name).get("model", {}))
    require_onnx()
    for name, proc in found:
        if proc.model.layers[0].shims[0]._model is None:
            raise ValueError(f"Component {name!r} has no weights yet: initialize or load the pipeline first.")
        swap_in_backbone(proc.model, quantize=quantize)
        add_onnx_backend(proc.model, quantize=quantize)
        # Only these keys change, so the saved config keeps its ${vars...}.
        block = nlp.get_pipe_config(name)["model"]
        block["@architectures"] = V4
        block["backend"] = "onnxruntime"
        block["quantize"] = quantize
        if "lora" in block:
            block["lora"] = None
    return [name for name, _ in found]
