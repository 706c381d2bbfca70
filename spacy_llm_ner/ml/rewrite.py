"""Rewrite a trained pipeline's transformer in place, config block included,
so that the saved pipeline loads as rewritten with `spacy.load`: quantize it
for CPU inference (`quantize_pipeline`) or merge its LoRA adapters into its
weights (`merge_lora_pipeline`), or prune its heads and layers
(`prune_pipeline`). The `quantize`, `merge-lora` and `prune` commands are
thin wrappers. The changes to the models themselves are in `ml/quantize.py`,
`ml/lora.py` and `ml/prune.py`."""
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.training import Example

from .lora import remove_lora
from .prune import (
    check_prunable, choose_layers, describe, drop_layers, head_importance, hf_transformer, prune_heads,
    remaining_heads, select_heads,
)
from .quantize import DEFAULT_METHOD, QUANTIZE_METHODS, quantize_model

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


def prune_pipeline(
    nlp: Language,
    examples: Sequence[Example],
    *,
    heads_per_layer: Optional[int] = None,
    keep_fraction: Optional[float] = None,
    layers: Optional[int] = None,
    layer_strategy: str = "top",
    component: str = "transformer",
    batch_size: int = 8,
) -> Dict[str, Any]:
    """Prune a trained pipeline's transformer in place: first whole layers
    (keep `layers`, chosen by `layer_strategy`), then the least important
    attention heads of those left (importance on `examples`, measured after
    the layers are gone). The HF config records the new shapes, so the saved
    pipeline loads pruned with `spacy.load`; the record is also added to
    nlp.meta["pruned"]. No config block changes: a pruned transformer trains,
    saves and quantizes like any other.

    nlp (Language): A trained pipeline (fp32, no LoRA adapters).
    examples (Sequence[Example]): Annotated examples for head importance
        (unused when no heads are pruned).
    heads_per_layer (Optional[int]): Heads to keep per layer.
    keep_fraction (Optional[float]): Or: fraction of heads to keep overall.
    layers (Optional[int]): Layers to keep (None: all).
    layer_strategy (str): One of LAYER_STRATEGIES.
    component (str): The transformer component.
    batch_size (int): Examples per importance batch.
    RETURNS (Dict[str, Any]): What was pruned and the shape after.
    """
    check_prunable(nlp, component)
    model = hf_transformer(nlp.get_pipe(component))
    before = describe(model)
    kept = list(range(before["layers"]))
    if layers is not None and layers != before["layers"]:
        kept = choose_layers(before["layers"], layers, strategy=layer_strategy)
        drop_layers(model, kept)
    pruned: Dict[int, List[int]] = {}
    if heads_per_layer is not None or keep_fraction is not None:
        if not examples:
            raise ValueError("Head importance needs annotated examples.")
        scores = head_importance(nlp, examples, component=component, batch_size=batch_size)
        pruned = select_heads(
            scores, remaining_heads(model), heads_per_layer=heads_per_layer, keep_fraction=keep_fraction
        )
        prune_heads(model, pruned)
    record = {
        "component": component,
        "layers_kept": kept,
        "heads_pruned": {str(k): sorted(v) for k, v in sorted(pruned.items())},
        "before": before,
        "after": describe(model),
    }
    nlp.meta.setdefault("pruned", []).append(record)
    return record
