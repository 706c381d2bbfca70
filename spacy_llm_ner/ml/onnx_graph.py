"""The ONNX graph of a HF backbone: traced from the model with eager
attention (the portable MatMul/Softmax form; onnxruntime fuses it when the
session is made), returning only `last_hidden_state`, the one output the
pipeline reads; int8 is onnxruntime's dynamic quantization of the MatMuls
with constant weights (int8 weights, activations quantized on the fly,
embeddings and LayerNorms left in fp32, as `quantize` does for torch).

The bottom of the ONNX modules: `onnx_backend.py` runs a graph,
`onnx_export.py` rewrites a trained pipeline to use one.
"""
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

import torch

# The names live apart from torch (the CLI lists them): re-exported here.
from .methods import DEFAULT_ONNX_QUANTIZE, ONNX_QUANTIZE_METHODS  # noqa: F401

EXTRA_HINT = "pip install 'spacy-llm-ner[onnx]'"
# Custom metadata key of an exported graph: how its weights were quantized.
QUANTIZE_KEY = "spacy_llm_ner.quantize"
def require_onnxruntime() -> Any:
    """Import onnxruntime, or fail with a one-line message naming the extra.

    RETURNS (module): onnxruntime.
    """
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(f"The ONNX Runtime backend needs onnxruntime: {EXTRA_HINT}") from err
    return onnxruntime


OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def require_onnx() -> Any:
    """Import onnx (needed to export and quantize, not to run), or fail with
    a one-line message naming the extra.

    RETURNS (module): onnx.
    """
    try:
        import onnx
    except ImportError as err:
        raise ImportError(f"Exporting to ONNX needs onnx and onnxruntime: {EXTRA_HINT}") from err
    require_onnxruntime()
    return onnx


class LastHiddenState(torch.nn.Module):
    """A HF encoder that returns only its last hidden state (the pooler and
    the other outputs are not computed or exported).

    encoder (torch.nn.Module): The HF model.
    """

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        return self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, return_dict=True
        ).last_hidden_state


def _eager_copy(transformer: torch.nn.Module) -> torch.nn.Module:
    # SDPA attention traces into ops whose masking some ORT versions get
    # wrong for padded rows; eager attention is plain MatMul/Softmax.
    from transformers import AutoModel

    config = type(transformer.config).from_dict(transformer.config.to_dict())
    config._attn_implementation = "eager"
    copy = AutoModel.from_config(config, attn_implementation="eager")
    copy.load_state_dict(transformer.state_dict())
    return copy.eval()


def _example_inputs(config: Any) -> Dict[str, torch.Tensor]:
    # Two rows, the second padded: the trace keeps the masking path.
    ids = torch.full((2, 8), min(5, config.vocab_size - 1), dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def _trace(transformer: torch.nn.Module, path: Path) -> None:
    module = LastHiddenState(_eager_copy(transformer))
    axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, "last_hidden_state")}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of dynamo (which
        # needs onnxscript); it handles HF encoders and needs nothing more.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (), str(path), kwargs=_example_inputs(transformer.config), input_names=list(INPUTS),
            output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=OPSET, dynamo=False,
        )


def quantize_graph(source: Path, target: Path, *, method: str = DEFAULT_ONNX_QUANTIZE) -> None:
    """Dynamic int8 quantization of an ONNX encoder's weight MatMuls.

    source (Path): The fp32 .onnx file.
    target (Path): Where to write the int8 one.
    method (str): One of ONNX_QUANTIZE_METHODS.
    """
    if method not in ONNX_QUANTIZE_METHODS:
        raise ValueError(f"Unknown quantize method {method!r}: expected one of {list(ONNX_QUANTIZE_METHODS)}.")
    require_onnx()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(
            str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
            per_channel=method == "dynamic_int8_per_channel",
        )


def export_graph(transformer: torch.nn.Module, *, quantize: Optional[str] = None) -> bytes:
    """Export a HF torch encoder to a serialized ONNX graph that takes
    input_ids, attention_mask and token_type_ids (any batch and length) and
    returns last_hidden_state.

    transformer (torch.nn.Module): The fp32 HF model (no adapter layers).
    quantize (Optional[str]): None (fp32) or one of ONNX_QUANTIZE_METHODS.
    RETURNS (bytes): The ONNX model, its quantization in its metadata.
    """
    onnx = require_onnx()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        _trace(transformer, path)
        if quantize:
            quantize_graph(path, Path(tmp) / "int8.onnx", method=quantize)
            path = Path(tmp) / "int8.onnx"
        graph = onnx.load(str(path))
    entry = graph.metadata_props.add()
    entry.key, entry.value = QUANTIZE_KEY, quantize or ""
    return graph.SerializeToString()


