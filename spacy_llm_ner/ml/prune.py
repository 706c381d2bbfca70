"""Structured pruning of a trained pipeline's transformer: whole attention
heads (ranked by importance, Michel et al. 2019, "Are Sixteen Heads Really
Better than One?") and whole layers.

Head importance is |d loss / d gate| summed over training batches, where
each head's output is multiplied by a gate fixed at 1: the gradient a
`head_mask` would get (a head's context is linear in its mask), measured
with the pipeline's own training loss through `nlp.update`.

Pruning changes only the Hugging Face model: heads are cut with
`prune_heads` (recorded in `config.pruned_heads`), layers by keeping a subset
of `encoder.layer` (`config.num_hidden_layers`). spacy-transformers saves the
HF config with the weights and rebuilds the model from it on load, and HF
re-applies `pruned_heads` when it builds a model from a config, so the saved
pipeline loads pruned with plain `spacy.load`; `quantize` works on top. The
recovery fine-tune is in `training/recover.py`; `python -m spacy_llm_ner
prune` does both.
"""
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy
import torch
from spacy.language import Language
from spacy.training import Example

# The names live apart from torch (the CLI lists them): re-exported here.
from .methods import LAYER_STRATEGIES


def hf_transformer(proc: Any) -> torch.nn.Module:
    """The Hugging Face model inside a spacy-transformers component.

    proc (Any): A `transformer` component (loaded or initialized).
    RETURNS (torch.nn.Module): Its HF model.
    """
    model = proc.model.layers[0].shims[0]._model
    if model is None:
        raise ValueError("The transformer has no weights yet: initialize or load the pipeline first.")
    return model


def _layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if layers is None or not all(hasattr(layer, "attention") for layer in layers):
        raise ValueError(
            f"Pruning needs a BERT-style encoder (encoder.layer[i].attention), not {type(model).__name__}."
        )
    return layers


def remaining_heads(model: torch.nn.Module) -> List[List[int]]:
    """The original indices of the heads still in each layer.

    model (torch.nn.Module): A BERT-style HF model.
    RETURNS (List[List[int]]): Per layer, sorted head indices.
    """
    n_heads = model.config.num_attention_heads
    pruned = model.config.pruned_heads or {}
    return [
        [h for h in range(n_heads) if h not in set(pruned.get(i, []))] for i in range(len(_layers(model)))
    ]


@contextmanager
def head_gates(model: torch.nn.Module) -> Iterator[List[torch.Tensor]]:
    """Multiply every head's output by a gate (all ones, requiring grad) for
    the duration of the block: the outputs are unchanged, the gates collect
    d loss / d gate on backward. Works with any attention implementation,
    unlike `head_mask`, which makes BERT fall back to eager attention.

    model (torch.nn.Module): A BERT-style HF model.
    YIELDS (List[torch.Tensor]): One gate vector per layer (its live heads).
    """
    gates, handles = [], []
    for heads, layer in zip(remaining_heads(model), _layers(model)):
        gate = torch.ones(len(heads), requires_grad=True)
        gates.append(gate)
        handles.append(layer.attention.self.register_forward_hook(_GateHook(gate)))
    try:
        yield gates
    finally:
        for handle in handles:
            handle.remove()


class _GateHook:
    # The context is (batch, length, heads * head_size) with each head's
    # columns contiguous: scaling a head's block is scaling its attention.
    def __init__(self, gate: torch.Tensor) -> None:
        self.gate = gate

    def __call__(self, module: torch.nn.Module, args: Any, output: Any) -> Any:
        context = output[0]
        n = self.gate.shape[0]
        shape = context.shape
        gated = (context.view(*shape[:-1], n, shape[-1] // n) * self.gate.to(context).view(n, 1)).view(shape)
        return (gated,) + tuple(output[1:])


def head_importance(
    nlp: Language,
    examples: Sequence[Example],
    *,
    component: str = "transformer",
    batch_size: int = 8,
    normalize: bool = True,
) -> List[numpy.ndarray]:
    """Importance of each attention head: |d loss / d gate| summed over the
    examples, with the pipeline's training loss (nlp.update, no optimizer
    step; gradients are cleared after).

    nlp (Language): A trained pipeline with a spacy-transformers component.
    examples (Sequence[Example]): Annotated examples (e.g. training docs).
    component (str): The transformer component.
    batch_size (int): Examples per backward pass.
    normalize (bool): Scale each layer's scores to unit L2 norm (Michel et
        al.), so that scores compare across layers.
    RETURNS (List[numpy.ndarray]): Per layer, one score per remaining head,
        in the order of `remaining_heads`.
    """
    from thinc.api import SGD

    model = hf_transformer(nlp.get_pipe(component))
    totals = [numpy.zeros(len(heads)) for heads in remaining_heads(model)]
    with head_gates(model) as gates:
        for start in range(0, len(examples), batch_size):
            nlp.update(list(examples[start : start + batch_size]), sgd=False, losses={})
            for total, gate in zip(totals, gates):
                if gate.grad is not None:
                    total += gate.grad.abs().detach().cpu().numpy()
                    gate.grad = None
    # A zero-rate step clears the accumulated gradients (torch and thinc)
    # without moving any weight, so a later fine-tune starts clean.
    clear = SGD(0.0, L2=0.0, grad_clip=0.0, use_averages=False)
    for _, proc in nlp.components:
        if hasattr(proc, "finish_update") and getattr(proc, "is_trainable", False):
            proc.finish_update(clear)
    if normalize:
        totals = [t / max(float(numpy.linalg.norm(t)), 1e-20) for t in totals]
    return totals


def select_heads(
    importance: Sequence[numpy.ndarray],
    heads: Sequence[Sequence[int]],
    *,
    heads_per_layer: Optional[int] = None,
    keep_fraction: Optional[float] = None,
) -> Dict[int, List[int]]:
    """The least important heads to prune: keep the `heads_per_layer` best
    of every layer, or the `keep_fraction` best overall (at least one per
    layer: a layer without heads is a layer to drop instead).

    importance (Sequence[numpy.ndarray]): Per layer, scores of its heads.
    heads (Sequence[Sequence[int]]): Per layer, the heads' original indices
        (`remaining_heads`).
    heads_per_layer (Optional[int]): Heads to keep in each layer.
    keep_fraction (Optional[float]): Fraction of all remaining heads to keep.
    RETURNS (Dict[int, List[int]]): Layer -> original indices to prune.
    """
    if (heads_per_layer is None) == (keep_fraction is None):
        raise ValueError("Give one of heads_per_layer and keep_fraction.")
    if heads_per_layer is not None:
        if heads_per_layer < 1:
            raise ValueError(f"heads_per_layer must be >= 1, got {heads_per_layer}.")
        keep = [list(numpy.argsort(-numpy.asarray(s), kind="stable")[:heads_per_layer]) for s in importance]
    else:
        if not 0.0 < keep_fraction <= 1.0:
            raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}.")
        keep = [[int(numpy.argmax(s))] for s in importance]
        n_keep = max(int(round(keep_fraction * sum(len(h) for h in heads))), len(keep))
        ranked = sorted(
            ((float(s[j]), i, j) for i, s in enumerate(importance) for j in range(len(s)) if j not in keep[i]),
            reverse=True,
        )
        for _, i, j in ranked[: n_keep - len(keep)]:
            keep[i].append(j)
    return {
        i: [heads[i][j] for j in range(len(heads[i])) if j not in set(int(k) for k in keep[i])]
        for i in range(len(heads))
        if len(keep[i]) < len(heads[i])
    }


def prune_heads(model: torch.nn.Module, prune: Dict[int, List[int]]) -> torch.nn.Module:
    """Remove attention heads in place (HF `prune_heads`: the Q, K, V rows
    and the output projection's columns), recorded in `config.pruned_heads`.

    model (torch.nn.Module): A BERT-style HF model.
    prune (Dict[int, List[int]]): Layer -> original head indices.
    RETURNS (torch.nn.Module): The same model.
    """
    live = remaining_heads(model)
    for layer, heads in prune.items():
        if not 0 <= layer < len(live):
            raise ValueError(f"No layer {layer}: the model has {len(live)}.")
        if set(heads) >= set(live[layer]):
            raise ValueError(f"Pruning every head of layer {layer}: drop the layer instead.")
    model.prune_heads({layer: list(heads) for layer, heads in prune.items() if heads})
    return model


def choose_layers(n_layers: int, n_keep: int, *, strategy: str = "top") -> List[int]:
    """Which layers to keep: "top" drops the top layers (best without
    retraining in Sajjad et al. 2020, "Poor Man's BERT"), "even" keeps
    evenly spaced ones, first and last included (DistilBERT's choice).

    n_layers (int): Layers now.
    n_keep (int): Layers to keep.
    strategy (str): One of LAYER_STRATEGIES.
    RETURNS (List[int]): Sorted indices.
    """
    if strategy not in LAYER_STRATEGIES:
        raise ValueError(f"Unknown layer strategy {strategy!r}: expected one of {list(LAYER_STRATEGIES)}.")
    if not 1 <= n_keep <= n_layers:
        raise ValueError(f"Can keep 1 to {n_layers} layers, not {n_keep}.")
    if strategy == "top" or n_keep == 1:
        return list(range(n_keep))
    return sorted({int(round(i * (n_layers - 1) / (n_keep - 1))) for i in range(n_keep)})


def drop_layers(model: torch.nn.Module, keep: Sequence[int]) -> torch.nn.Module:
    """Keep only some encoder layers, in place; `num_hidden_layers` and
    `pruned_heads` are renumbered so that a model built from the config has
    the same shapes.

    model (torch.nn.Module): A BERT-style HF model.
    keep (Sequence[int]): Layer indices to keep.
    RETURNS (torch.nn.Module): The same model.
    """
    layers = _layers(model)
    keep = sorted(set(int(i) for i in keep))
    if not keep or keep[0] < 0 or keep[-1] >= len(layers):
        raise ValueError(f"Layers to keep must be among 0..{len(layers) - 1}, got {keep}.")
    model.encoder.layer = torch.nn.ModuleList([layers[i] for i in keep])
    pruned = model.config.pruned_heads or {}
    model.config.pruned_heads = {new: list(pruned[old]) for new, old in enumerate(keep) if pruned.get(old)}
    model.config.num_hidden_layers = len(keep)
    return model


def describe(model: torch.nn.Module) -> Dict[str, Any]:
    """The pruned shape of a model, for nlp.meta and reports.

    model (torch.nn.Module): A BERT-style HF model.
    RETURNS (Dict[str, Any]): layers, heads per layer, parameters.
    """
    heads = remaining_heads(model)
    return {
        "layers": len(heads),
        "heads_per_layer": [len(h) for h in heads],
        "parameters": int(sum(p.numel() for p in model.parameters())),
    }


def check_prunable(nlp: Language, component: str = "transformer") -> None:
    """Refuse what pruning would break: a quantized, LoRA or ONNX backbone.

    nlp (Language): The pipeline.
    component (str): The transformer component.
    """
    if component not in nlp.pipe_names:
        raise ValueError(f"No component {component!r} in the pipeline {nlp.pipe_names}.")
    block = nlp.get_pipe_config(component).get("model", {})
    for key, fix in (("quantize", "prune the fp32 pipeline, then quantize"),
                     ("lora", "merge the adapters first (merge-lora)"),
                     ("backend", "prune the torch pipeline, then export-onnx")):
        value = block.get(key)
        if value and value != "torch":
            raise ValueError(f"Component {component!r} has {key} = {value!r}: {fix}.")
    _layers(hf_transformer(nlp.get_pipe(component)))
