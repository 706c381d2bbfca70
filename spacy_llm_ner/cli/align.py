"""`align-kb`: align a name encoder on a knowledge base's own synonyms."""
from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

from . import app


@app.command("align-kb")
def align_kb_cli(
    kb_path: Path = typer.Argument(..., metavar="KB", exists=True, help="KB file (JSONL/CSV/TSV/CTD, .gz too)"),
    out_dir: Path = typer.Argument(..., metavar="MODEL_OUT", file_okay=False, help="Where to save the aligned HF folder"),
    base: str = typer.Option("all-MiniLM-L6-v2", "--base", help="Model to start from (name, folder or package)"),
    aliases_from: List[Path] = typer.Option(
        [], "--aliases-from", exists=True, dir_okay=False, help=".spacy file whose gold-linked mentions add synonyms"
    ),
    strip_prefix: Optional[str] = typer.Option(None, "--strip-prefix", help='Id prefix to strip, e.g. "MESH:"'),
    steps: int = typer.Option(1000, "--steps", min=1, help="Optimizer steps"),
    batch_entities: int = typer.Option(64, "--batch-entities", min=2, help="Entities per batch"),
    neighbours: int = typer.Option(3, "--neighbours", min=0, help="Hard-negative 3-gram neighbours per seed entity"),
    learning_rate: float = typer.Option(2e-5, "--lr", help="AdamW learning rate"),
    seed: int = typer.Option(0, "--seed", help="Random seed"),
) -> None:
    """Train a name encoder so that names of the same KB entity embed close
    together and names of look-alike entities apart (SapBERT's
    self-alignment; no annotated text needed). The result is an ordinary
    Hugging Face folder: a pipeline's `--vars.transformer_name`, or a
    nearest-name linker of its own."""
    from ..kb.loaders import read_records
    from ..kb.mentions import add_mention_aliases, read_linked_mentions
    from ..ml.name_encoder import NameEncoder
    from ..training.align import AlignSettings, align_encoder

    try:
        records = list(read_records(kb_path, strip_prefix=strip_prefix))
    except ValueError as err:
        msg.fail(str(err), exits=1)
    if aliases_from:
        records, stats = add_mention_aliases(records, read_linked_mentions(aliases_from))
        msg.info(f"Mention aliases: {stats.added} added")
    settings = AlignSettings(
        steps=steps, batch_entities=batch_entities, neighbours=neighbours, learning_rate=learning_rate, seed=seed
    )
    encoder = NameEncoder(base, max_length=settings.max_length)
    with msg.loading(f"Aligning {base} on {len(records):,} entities, {steps} steps..."):
        try:
            align_encoder(encoder, records, settings=settings, on_step=_progress(steps))
        except ValueError as err:
            msg.fail(str(err), exits=1)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder.save(out_dir)
    msg.good(f"Saved the aligned encoder to {out_dir} (use it with --vars.transformer_name {out_dir})")


def _progress(steps: int):
    every = max(1, steps // 20)
    window: List[float] = []

    def report(step: int, loss: float) -> None:
        window.append(loss)
        if step % every == 0 or step == steps:
            print(f"step {step}/{steps}  loss {sum(window) / len(window):.4f}", flush=True)
            window.clear()

    return report
