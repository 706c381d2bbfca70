"""ONNX Runtime backend for the shared transformer (TransformerModel.v4 with
`backend = "onnxruntime"`).

The spacy-transformers TransformerModel is kept whole (tokenizer, span
getter, alignment, length bucketing); only the HF model inside its shim is
replaced, by `OnnxBackbone`: a `torch.nn.Module` with the HF model's call
signature whose forward runs an onnxruntime InferenceSession. The ONNX graph
is the module's one buffer, so it is saved in the transformer's folder
(`transformer/model`, beside the tokenizer files) exactly where torch weights
would be, loads offline with `spacy.load`, and pickles with the pipeline.

Loading builds the backbone from the saved HF config through a model-class
stand-in (`OnnxModelClass`, as `ml/hf_class.py` does for LoRA and torch
quantization) before the saved state is read, so no torch weights are ever
built. A session is made per process and per torch thread count: forked
workers (`nlp.pipe(n_process=N)`) build their own. The graph itself is made
by `ml/onnx_graph.py`.
"""
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy
import torch
from thinc.api import Model

from .onnx_graph import QUANTIZE_KEY, export_graph, require_onnxruntime

BACKENDS = ("torch", "onnxruntime")
# Sessions inherited through fork: their thread pools' threads only exist in
# the parent, so destroying them in the child would wait on those threads
# forever. They are parked here instead (forked workers end by os._exit, so
# nothing runs their destructors).
_FORK_ORPHANS: List[Any] = []


def check_backend(backend: str) -> str:
    """Validate the `backend` setting of a config.

    backend (str): "torch" or "onnxruntime".
    RETURNS (str): The backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown transformer backend {backend!r}: expected one of {list(BACKENDS)}.")
    return backend


def _session_options(threads: int) -> Any:
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    # One pool of `threads` threads for the ops, as torch uses: the
    # transformer's graph is a chain, so parallel branches gain nothing.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # ORT's idle pool threads spin by default: between two calls they would
    # take a core from what the pipeline does in Python (tokenization,
    # alignment, decoding) and from torch in the same process.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxBackbone(torch.nn.Module):
    """Stands in for the HF model in a spacy-transformers shim: called with
    input_ids, attention_mask and token_type_ids (torch tensors), returns a
    `BaseModelOutput` whose `last_hidden_state` onnxruntime computed.

    config (PretrainedConfig): The HF config (saved with the pipeline).
    graph (bytes): The serialized ONNX model; empty until the saved state is
        loaded.
    quantize (Optional[str]): The quantization the config declares; the
        graph's own metadata must agree.
    """

    def __init__(self, config: Any, graph: bytes = b"", *, quantize: Optional[str] = None) -> None:
        super().__init__()
        self.config = config
        self.quantize = quantize or None
        data = torch.frombuffer(bytearray(graph), dtype=torch.uint8) if graph else torch.zeros(0, dtype=torch.uint8)
        self.register_buffer("onnx_graph", data)
        self._session: Any = None
        self._session_key: Tuple[int, int] = (0, 0)
        if graph:
            self.session()

    @property
    def device(self) -> torch.device:
        """Where inputs go: the session reads numpy arrays on the CPU."""
        return torch.device("cpu")

    @property
    def graph_bytes(self) -> bytes:
        """The serialized ONNX model."""
        return self.onnx_graph.numpy().tobytes()

    def session(self) -> Any:
        """The InferenceSession of this process, made with torch's current
        thread count (so `torch.set_num_threads` and the fork guard of
        `spacy_llm_ner.util` apply to both backends).

        RETURNS (InferenceSession): The session.
        """
        key = (os.getpid(), torch.get_num_threads())
        if self._session is not None and self._session_key == key:
            return self._session
        if self._session is not None and self._session_key[0] != key[0]:
            _FORK_ORPHANS.append(self._session)
        if not self.onnx_graph.numel():
            raise ValueError("The ONNX backbone has no graph: load a pipeline saved by `export-onnx`.")
        ort = require_onnxruntime()
        session = ort.InferenceSession(self.graph_bytes, _session_options(key[1]), providers=["CPUExecutionProvider"])
        declared = session.get_modelmeta().custom_metadata_map.get(QUANTIZE_KEY) or None
        if declared != self.quantize:
            raise ValueError(
                f"The saved ONNX graph is quantized as {declared!r} but the config sets quantize = "
                f"{self.quantize!r}: set it to {declared!r}, or export the pipeline again."
            )
        self._session, self._session_key = session, key
        self._inputs = tuple(item.name for item in session.get_inputs())
        return session

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,
        **kwargs: Any,
    ) -> Any:
        """Run the graph.

        input_ids (torch.Tensor): Word-piece ids, (batch, length).
        attention_mask (Optional[torch.Tensor]): 1 for real pieces, 0 for padding.
        token_type_ids (Optional[torch.Tensor]): Segment ids; zeros if None.
        RETURNS (BaseModelOutput): last_hidden_state, (batch, length, width).
        """
        from transformers.modeling_outputs import BaseModelOutput

        session = self.session()
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        feeds: Dict[str, numpy.ndarray] = {}
        for name in self._inputs:
            value = given.get(name)
            if value is None:
                # Masks of ones and segment zeros are what HF models assume.
                value = torch.ones_like(input_ids) if name == "attention_mask" else torch.zeros_like(input_ids)
            # Bucketed chunks are column slices: the session needs contiguous int64.
            feeds[name] = numpy.ascontiguousarray(value.cpu().numpy(), dtype="int64")
        (hidden,) = session.run(["last_hidden_state"], feeds)
        return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden))

    def _load_from_state_dict(
        self, state_dict: Dict[str, Any], prefix: str, local_metadata: Any, strict: bool,
        missing_keys: List[str], unexpected_keys: List[str], error_msgs: List[str],
    ) -> None:
        # The graph's size is only known once read: take the tensor as it is
        # rather than copying into the empty buffer. A ValueError, not a
        # RuntimeError, so that HFShim does not retry with strict=False.
        key = prefix + "onnx_graph"
        if key not in state_dict:
            raise ValueError(
                "The saved transformer holds torch weights, not an ONNX graph, but the config sets "
                "backend = 'onnxruntime'. Export the trained pipeline with `python -m spacy_llm_ner export-onnx "
                "IN_MODEL OUT_MODEL`, or load it with backend = 'torch'."
            )
        self.onnx_graph = state_dict[key].detach().to("cpu", torch.uint8).contiguous()
        self._session = None
        self.session()

    def __getstate__(self) -> Dict[str, Any]:
        # Sessions do not pickle (spawned workers, deepcopy): rebuilt on use.
        state = self.__dict__.copy()
        state["_session"], state["_session_key"] = None, (0, 0)
        return state


class OnnxModelClass:
    """Stands in for the HF model class of the shim when a pipeline with the
    onnxruntime backend is loaded: `from_config` builds an empty
    `OnnxBackbone` (no torch weights) for the saved graph to be read into.
    Picklable, so that pipelines pickle.

    quantize (Optional[str]): The quantization the config declares.
    """

    def __init__(self, quantize: Optional[str] = None) -> None:
        self.quantize = quantize

    def from_config(self, config: Any, **kwargs: Any) -> OnnxBackbone:
        """An empty backbone for a HF config.

        config (PretrainedConfig): The saved HF config.
        RETURNS (OnnxBackbone): The backbone, without its graph.
        """
        return OnnxBackbone(config, quantize=self.quantize)

    def from_pretrained(self, *args: Any, **kwargs: Any) -> OnnxBackbone:
        """Pretrained HF weights, exported.

        *args, **kwargs: Passed to transformers' AutoModel.from_pretrained.
        RETURNS (OnnxBackbone): The backbone.
        """
        from transformers import AutoModel

        return backbone_from_torch(AutoModel.from_pretrained(*args, **kwargs), quantize=self.quantize)


def backbone_from_torch(transformer: torch.nn.Module, *, quantize: Optional[str] = None) -> OnnxBackbone:
    """Export a HF torch model (LoRA adapters merged) and wrap the graph.

    transformer (torch.nn.Module): The fp32 backbone.
    quantize (Optional[str]): None (fp32) or an int8 method of ONNX_QUANTIZE_METHODS.
    RETURNS (OnnxBackbone): The backbone, with its session.
    """
    return OnnxBackbone(transformer.config, export_graph(transformer, quantize=quantize), quantize=quantize)


class OnnxInferenceOnly:
    """Wraps a TransformerModel's forward: a model on the onnxruntime
    backend predicts but cannot train (no gradients through the session).
    A class, so that the pipeline pickles."""

    def __init__(self, forward: Callable) -> None:
        self.forward = forward

    def __call__(self, model: Model, docs: Any, is_train: bool) -> Any:
        if is_train:
            raise ValueError(
                "This transformer runs on onnxruntime (backend = 'onnxruntime') and can only predict. Train with "
                "backend = 'torch' (or freeze the transformer) and export the trained pipeline with "
                "`python -m spacy_llm_ner export-onnx`."
            )
        return self.forward(model, docs, is_train)


class OnnxSetTransformer:
    """Wraps the model's `set_transformer` attr: pretrained weights set on
    initialize are exported to ONNX. A class, so that the pipeline pickles."""

    def __init__(self, set_transformer: Callable, quantize: Optional[str]) -> None:
        self.set_transformer = set_transformer
        self.quantize = quantize

    def __call__(self, model: Model, hf_model: Any) -> None:
        self.set_transformer(model, hf_model)
        swap_in_backbone(model, quantize=self.quantize)


def add_onnx_backend(model: Model, *, quantize: Optional[str] = None) -> Model:
    """Make a spacy-transformers TransformerModel run its backbone on
    onnxruntime whenever the backbone is created: exported from pretrained
    weights (initialize) or read from a saved pipeline (loading).

    model (Model): A TransformerModel from TransformerModel.v1, no LoRA.
    quantize (Optional[str]): None (fp32) or an int8 method.
    RETURNS (Model): The same model.
    """
    if model.attrs.get("backend") == "onnxruntime":
        return model
    require_onnxruntime()
    shim = model.layers[0].shims[0]
    shim.model_cls = OnnxModelClass(quantize)
    model.attrs["set_transformer"] = OnnxSetTransformer(model.attrs["set_transformer"], quantize)
    model._func = OnnxInferenceOnly(model._func)
    model.attrs["backend"] = "onnxruntime"
    model.attrs["onnx_quantize"] = quantize
    return model


def swap_in_backbone(model: Model, *, quantize: Optional[str] = None) -> OnnxBackbone:
    """Replace the torch backbone of an initialized TransformerModel by its
    ONNX export (LoRA adapters merged first).

    model (Model): A TransformerModel with its weights.
    quantize (Optional[str]): None (fp32) or an int8 method.
    RETURNS (OnnxBackbone): The new backbone.
    """
    from .lora import merge_adapters

    shim = model.layers[0].shims[0]
    if isinstance(shim._model, OnnxBackbone):
        return shim._model
    backbone = backbone_from_torch(merge_adapters(shim._model).eval(), quantize=quantize)
    shim._model = backbone
    shim._hfmodel.transformer = backbone
    return backbone
