"""LoRA adapters on the shared transformer (parameter-efficient fine-tuning).

With `lora` set in `spacy_llm_ner.TransformerModel.v2`, low-rank adapters
(peft) are put into the backbone's attention projections when its weights are
loaded, and every other backbone weight is frozen: the optimizer steps only
the adapters (and the heads above). The adapters are saved with the pipeline
inside the transformer's state; loading rebuilds the adapted model before the
state is read, so `nlp.to_disk` / `spacy.load` round-trip exactly.
"""
from functools import partial
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from thinc.api import Model

from .hf_class import TransformedModelClass

DEFAULT_TARGETS = ("query", "value")


def lora_config(*, r: int = 8, alpha: float = 16.0, dropout: float = 0.05, target_modules: Sequence[str] = DEFAULT_TARGETS) -> Any:
    """A peft LoraConfig, with errors named in our terms.

    r (int): Adapter rank.
    alpha (float): Scaling numerator (the update is scaled by alpha / r).
    dropout (float): Dropout on the adapter input in training.
    target_modules (Sequence[str]): Names of the Linear modules adapted
        (BERT: "query", "key", "value", "dense").
    RETURNS (peft.LoraConfig): The config.
    """
    try:
        from peft import LoraConfig
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "LoRA adapters need the `peft` package: pip install 'spacy-llm-ner[lora]'."
        ) from err
    if r < 1:
        raise ValueError(f"lora r must be >= 1, got {r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"lora dropout must be in [0, 1), got {dropout}.")
    if not target_modules:
        raise ValueError("lora target_modules must name at least one module, e.g. ['query', 'value'].")
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules), bias="none")


def inject(transformer: Any, config: Any) -> Any:
    """Put the adapters into a HF model in place and freeze its other
    weights.

    transformer (transformers.PreTrainedModel): The backbone.
    config (peft.LoraConfig): The adapters.
    RETURNS (transformers.PreTrainedModel): The same model, adapted.
    """
    from peft import inject_adapter_in_model

    if any("lora_" in name for name, _ in transformer.named_parameters()):
        return transformer
    try:
        return inject_adapter_in_model(config, transformer)
    except ValueError as err:
        names = sorted({n.rsplit(".", 1)[-1] for n, _ in transformer.named_modules() if n})
        raise ValueError(f"LoRA target_modules {sorted(config.target_modules)} not found in the model ({err}); "
                         f"module names include {names[:20]}") from err


class AdaptedSetter:
    """Wraps the TransformerModel's `set_transformer` so that a HF model set
    at initialize time gets the adapters (a class, not a closure, so that
    pipelines stay picklable for multiprocessing)."""

    def __init__(self, set_transformer: Any, config: Any) -> None:
        self.set_transformer = set_transformer
        self.config = config

    def __call__(self, model: Model, hf_model: Any) -> None:
        inject(hf_model.transformer, self.config)
        self.set_transformer(model, hf_model)


def add_lora(model: Model, settings: Dict[str, Any]) -> Model:
    """Make a spacy-transformers TransformerModel train LoRA adapters.

    model (Model): A TransformerModel (from TransformerModel.v3).
    settings (Dict[str, Any]): Keyword arguments of `lora_config`.
    RETURNS (Model): The same model.
    """
    config = lora_config(**settings)
    shim = model.layers[0].shims[0]
    shim.model_cls = TransformedModelClass(shim.model_cls, partial(inject, config=config))
    model.attrs["set_transformer"] = AdaptedSetter(model.attrs["set_transformer"], config)
    model.attrs["lora"] = dict(settings)
    return model


def _adapter_layers(module: torch.nn.Module) -> Iterator[Tuple[torch.nn.Module, str, Any]]:
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # pragma: no cover - without peft there are no adapters
        return
    for name, sub in list(module.named_modules()):
        if isinstance(sub, BaseTunerLayer):
            parent_name, _, child = name.rpartition(".")
            yield module.get_submodule(parent_name), child, sub


def merge_adapters(transformer: torch.nn.Module) -> torch.nn.Module:
    """Merge LoRA adapters (injected by `spacy_llm_ner.ml.lora`) into the
    weights they adapt and put the plain layers back, in place. The outputs
    are unchanged; what remains is an ordinary model that quantizes like any
    other (peft's adapter layers read `weight` as a tensor, which a quantized
    Linear does not have).

    transformer (torch.nn.Module): The backbone, adapted or not.
    RETURNS (torch.nn.Module): The same model without adapter layers.
    """
    for parent, child, layer in list(_adapter_layers(transformer)):
        layer.merge()
        setattr(parent, child, layer.get_base_layer())
    return transformer


def remove_lora(model: Model) -> Model:
    """Merge a trained TransformerModel's LoRA adapters into its backbone
    weights, in place: the inverse of `add_lora`. Predictions are unchanged
    and run at the speed of a plain backbone (no extra adapter matmuls); the
    backbone is an ordinary model again, every weight trainable, that saves
    and loads without `lora`.

    model (Model): A TransformerModel with adapters and its weights.
    RETURNS (Model): The same model.
    """
    if not model.attrs.get("lora"):
        raise ValueError("The transformer has no LoRA adapters (`lora` is not set).")
    if model.attrs.get("quantize"):
        raise ValueError("The transformer is quantized: its adapters were merged when it was quantized.")
    shim = model.layers[0].shims[0]
    if shim._model is None:
        raise ValueError("The transformer has no weights yet: initialize or load the pipeline first.")
    merge_adapters(shim._model)
    for param in shim._model.parameters():
        param.requires_grad_(True)
    if isinstance(shim.model_cls, TransformedModelClass):
        shim.model_cls = shim.model_cls.model_cls
    if isinstance(model.attrs["set_transformer"], AdaptedSetter):
        model.attrs["set_transformer"] = model.attrs["set_transformer"].set_transformer
    del model.attrs["lora"]
    return model


def parameter_counts(model: Model) -> Dict[str, int]:
    """Trainable and total parameters of a (possibly adapted) transformer.

    model (Model): A TransformerModel, initialized.
    RETURNS (Dict[str, int]): {"trainable": n, "total": n}.
    """
    transformer = model.layers[0].shims[0]._model
    params: List = list(transformer.parameters()) if transformer is not None else []
    return {"trainable": sum(p.numel() for p in params if p.requires_grad), "total": sum(p.numel() for p in params)}


def lora_settings(lora: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """Validate the `lora` block of a config (None or {} = no adapters)."""
    if not lora:
        return None
    known = {"r", "alpha", "dropout", "target_modules"}
    unknown = sorted(set(lora) - known)
    if unknown:
        raise ValueError(f"Unknown lora settings {unknown}: expected some of {sorted(known)}.")
    return dict(lora)
