"""Dynamic int8 quantization of the shared transformer, for CPU inference.

With `quantize = "dynamic_int8"` in `spacy_llm_ner.TransformerModel.v3`, every
`nn.Linear` of the backbone is replaced by PyTorch's dynamically quantized
Linear (int8 weights, activations quantized on the fly): smaller on disk and in
memory, usually faster on CPU, at a small cost in accuracy. Embeddings and
LayerNorms stay fp32. LoRA adapters (`lora`) are merged into the weights first.

The quantized weights are saved with the pipeline. Loading rebuilds the model
from its HF config and quantizes it *before* the saved state is read (the same
model-class stand-in as for LoRA, `ml/hf_class.py`), so `nlp.to_disk` /
`spacy.load` round-trip exactly. A quantized transformer is for inference only: train with
TransformerModel.v1/.v2, then quantize (`python -m spacy_llm_ner quantize`).
"""
import warnings
from functools import partial
from typing import Any, Callable, Dict, List, Optional

import torch
from thinc.api import Model, get_torch_default_device

from .lora import merge_adapters
from .hf_class import TransformedModelClass
from .precision import BF16, add_bf16_prediction
# The names live apart from torch (the CLI lists them): re-exported here.
from .methods import DEFAULT_METHOD, QUANTIZE_METHODS  # noqa: F401


def quantize_settings(quantize: Optional[str]) -> Optional[str]:
    """Validate the `quantize` setting of a config (None or "" = fp32).

    quantize (Optional[str]): One of QUANTIZE_METHODS, or None.
    RETURNS (Optional[str]): The method, or None.
    """
    if not quantize:
        return None
    if quantize not in QUANTIZE_METHODS:
        raise ValueError(f"Unknown quantize method {quantize!r}: expected one of {list(QUANTIZE_METHODS)} or null.")
    return quantize


def _quantized_linear_type() -> type:
    from torch.ao.nn.quantized.dynamic import Linear

    return Linear


def quantized_linears(module: torch.nn.Module) -> List[str]:
    """Names of the dynamically quantized Linear modules of a model.

    module (torch.nn.Module): A model.
    RETURNS (List[str]): Module names, e.g. "encoder.layer.0.attention.self.query".
    """
    linear = _quantized_linear_type()
    return [name for name, sub in module.named_modules() if isinstance(sub, linear)]


def float_linears(module: torch.nn.Module) -> List[str]:
    """Names of the (unquantized) `nn.Linear` modules of a model.

    module (torch.nn.Module): A model.
    RETURNS (List[str]): Module names.
    """
    return [name for name, sub in module.named_modules() if type(sub) is torch.nn.Linear]


def _refuse_float_state(module: torch.nn.Module, state_dict: Dict[str, Any], prefix: str, *args: Any) -> None:
    # HFShim.from_bytes falls back to load_state_dict(strict=False) on a
    # RuntimeError, which would leave a quantized model with random weights
    # when the saved state is fp32 (a config edited by hand): stop instead.
    names = quantized_linears(module)
    if names and not any(f"{prefix}{name}._packed_params._packed_params" in state_dict for name in names):
        raise ValueError(
            "The saved transformer weights are not quantized, but the config sets `quantize`. "
            "Quantize the trained pipeline with `python -m spacy_llm_ner quantize IN_MODEL OUT_MODEL`, "
            "or load it with quantize = null."
        )


def quantize_transformer(transformer: torch.nn.Module, method: str = "dynamic_int8") -> torch.nn.Module:
    """Quantize a HF model in place: LoRA adapters are merged, then every
    `nn.Linear` becomes a dynamically quantized int8 Linear. A model that is
    already quantized is returned as is.

    transformer (torch.nn.Module): The backbone.
    method (str): "dynamic_int8" (one scale per weight matrix) or
        "dynamic_int8_per_channel" (one per output row).
    RETURNS (torch.nn.Module): The quantized model, in eval mode.
    """
    if quantize_settings(method) == BF16:
        raise ValueError("quantize = 'bf16' keeps the fp32 weights: use add_bf16_prediction, not int8 Linears.")
    if quantized_linears(transformer):
        return transformer
    device = get_torch_default_device()
    if device.type != "cpu":
        raise ValueError(
            f"quantize = {method!r} runs on CPU only, but the default torch device is {device}: "
            "load the pipeline without spacy.require_gpu / --gpu-id."
        )
    merge_adapters(transformer)
    with warnings.catch_warnings():
        # torch.ao.quantization warns that it is deprecated in favour of
        # torchao; it is still the one CPU int8 path shipped with torch.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao")
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions")
        qconfig = (
            torch.ao.quantization.per_channel_dynamic_qconfig
            if method == "dynamic_int8_per_channel"
            else torch.ao.quantization.default_dynamic_qconfig
        )
        quantized = torch.ao.quantization.quantize_dynamic(
            transformer.to("cpu"), {torch.nn.Linear: qconfig}, dtype=torch.qint8, inplace=True
        )
    quantized.register_load_state_dict_pre_hook(_refuse_float_state)
    return quantized.eval()


class InferenceOnlyForward:
    """Wraps a TransformerModel's forward so that training a quantized model
    fails with a clear message instead of deep inside autograd (the int8
    Linear has no backward). A class, not a closure: pipelines must still
    pickle (nlp.pipe with n_process > 1 on spawn platforms)."""

    def __init__(self, forward: Callable) -> None:
        self.forward = forward

    def __call__(self, model: Model, docs: Any, is_train: bool) -> Any:
        if is_train:
            raise ValueError(
                "This transformer is quantized (`quantize` is set) and can only predict. Train with "
                "spacy_llm_ner.TransformerModel.v2 (or freeze the transformer) and quantize the trained pipeline "
                "with `python -m spacy_llm_ner quantize`."
            )
        return self.forward(model, docs, is_train)


class QuantizedSetTransformer:
    """Wraps the model's `set_transformer` attr: backbone weights set on
    initialize (LoRA injected by the wrapped setter, if any) are quantized.
    A class, not a closure, so that the pipeline pickles."""

    def __init__(self, set_transformer: Callable, method: str) -> None:
        self.set_transformer = set_transformer
        self.method = method

    def __call__(self, model: Model, hf_model: Any) -> None:
        self.set_transformer(model, hf_model)
        _swap_in_quantized(model, self.method)


def add_quantization(model: Model, method: str) -> Model:
    """Make a spacy-transformers TransformerModel quantize its backbone
    whenever the backbone is created: from pretrained weights (initialize)
    or from the saved config (loading a pipeline).

    model (Model): A TransformerModel (TransformerModel.v1/.v2 output).
    method (str): One of QUANTIZE_METHODS.
    RETURNS (Model): The same model.
    """
    method = quantize_settings(method) or ""
    if not method or model.attrs.get("quantize"):
        return model
    if method == BF16:
        return add_bf16_prediction(model)
    shim = model.layers[0].shims[0]
    # Adapters of a LoRA stand-in below are merged by quantize_transformer.
    shim.model_cls = TransformedModelClass(shim.model_cls, partial(quantize_transformer, method=method))
    model.attrs["set_transformer"] = QuantizedSetTransformer(model.attrs["set_transformer"], method)
    model._func = InferenceOnlyForward(model._func)
    model.attrs["quantize"] = method
    return model


def _swap_in_quantized(model: Model, method: str) -> None:
    shim = model.layers[0].shims[0]
    quantized = quantize_transformer(shim._model, method)
    shim._model = quantized
    shim._hfmodel.transformer = quantized


def quantize_model(model: Model, method: str = "dynamic_int8") -> Model:
    """Quantize the backbone of a loaded (initialized) TransformerModel in
    place, and make it rebuild a quantized backbone when loaded again, so
    that it can be saved with the pipeline.

    model (Model): A TransformerModel from TransformerModel.v1/.v2 (or
        spacy-transformers' TransformerModel.v3), with its weights.
    method (str): One of QUANTIZE_METHODS.
    RETURNS (Model): The same model.
    """
    if not model.attrs.get("has_transformer") or model.layers[0].shims[0]._model is None:
        raise ValueError("The transformer has no weights yet: initialize or load the pipeline first.")
    if model.attrs.get("quantize"):
        return model
    add_quantization(model, method)
    if method != BF16:
        _swap_in_quantized(model, method)
    return model
