"""`prune`: remove attention heads and layers from a trained pipeline's
transformer, then fine-tune it back towards the unpruned teacher."""
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from ..ml.methods import LAYER_STRATEGIES
from . import app


@app.command("prune")
def prune_cli(
    in_model: Path = typer.Argument(..., metavar="IN_MODEL", exists=True, file_okay=False, help="Trained pipeline directory"),
    out_model: Path = typer.Argument(..., metavar="OUT_MODEL", file_okay=False, help="Where to save the pruned pipeline"),
    data: Path = typer.Option(..., "--data", exists=True, dir_okay=False, help="Annotated training corpus (.spacy): head importance and recovery"),
    heads_per_layer: Optional[int] = typer.Option(None, "--heads-per-layer", help="Attention heads to keep in every layer"),
    keep_heads: Optional[float] = typer.Option(None, "--keep-heads", help="Or: fraction of all heads to keep (the most important, >= 1 per layer)"),
    layers: Optional[int] = typer.Option(None, "--layers", help="Transformer layers to keep (default: all)"),
    layer_strategy: str = typer.Option("top", "--layer-strategy", help=f"Which layers to keep: {', '.join(LAYER_STRATEGIES)}"),
    steps: int = typer.Option(1000, "--steps", help="Recovery fine-tune updates (0: none)"),
    batch_size: int = typer.Option(8, "--batch-size", help="Docs per update"),
    learn_rate: float = typer.Option(5e-5, "--learn-rate", help="Recovery learning rate (Adam, constant)"),
    distill_weight: float = typer.Option(1.0, "--distill-weight", help="Weight of the teacher's KL beside the gold loss"),
    importance_docs: int = typer.Option(512, "--importance-docs", help="Docs for head importance"),
    teacher: Optional[Path] = typer.Option(None, "--teacher", exists=True, file_okay=False, help="Unpruned teacher (default IN_MODEL; set it when IN_MODEL is already pruned)"),
    component: str = typer.Option("transformer_ner", "--component", help="The NER component the teacher labels for"),
    seed: int = typer.Option(0, "--seed", help="Random seed"),
) -> None:
    """Prune whole transformer layers (keep --layers) and the least important
    attention heads (gradient x activation on --data: --heads-per-layer or
    --keep-heads), then fine-tune on --data with the teacher's tag
    distributions as soft targets (--steps). The result loads with
    spacy.load and can be quantized. Prints the shape and size before and
    after."""
    if out_model.resolve() == in_model.resolve():
        msg.fail("OUT_MODEL must differ from IN_MODEL (the teacher is kept)", exits=1)
    if heads_per_layer is not None and keep_heads is not None:
        msg.fail("Give --heads-per-layer or --keep-heads, not both", exits=1)
    if heads_per_layer is None and keep_heads is None and layers is None:
        msg.fail("Nothing to prune: give --heads-per-layer, --keep-heads and/or --layers", exits=1)
    import spacy
    from spacy.tokens import DocBin
    from thinc.api import fix_random_seed

    from ..training.recover import prune_and_recover
    from .quantize import print_sizes

    fix_random_seed(seed)
    nlp = spacy.load(in_model)
    docs = list(DocBin().from_disk(data).get_docs(nlp.vocab))
    msg.info(f"Pruning {in_model} ({len(docs)} docs for importance and recovery, {steps} steps)...")
    try:
        record = prune_and_recover(
            nlp, docs, steps=steps, teacher=spacy.load(teacher) if teacher else None,
            heads_per_layer=heads_per_layer, keep_fraction=keep_heads, layers=layers, layer_strategy=layer_strategy,
            importance_docs=importance_docs, batch_size=batch_size, learn_rate=learn_rate,
            distill_weight=distill_weight, component=component,
        )
    except ValueError as err:
        msg.fail(str(err), exits=1)
    nlp.to_disk(out_model)
    before, after = record["before"], record["after"]
    msg.good(
        f"Pruned to {after['layers']} layers, heads {after['heads_per_layer']} "
        f"({after['parameters']:,} of {before['parameters']:,} backbone parameters); "
        f"KL to the teacher {record['kl_pruned']:.4f} -> {record['kl_recovered']:.4f} after recovery: saved to {out_model}"
    )
    print_sizes(in_model, out_model, label="pruned")
