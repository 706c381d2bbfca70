"""`distill-corpus`: label a training corpus (and extra raw text) with a
teacher's tag distributions, for a student trained with `spacy train`."""
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from wasabi import msg

from . import app


def read_texts(path: Path) -> Iterator[str]:
    """Unlabelled texts: one per non-empty line of a .txt file, or the
    "text" field of each line of a .jsonl file.

    path (Path): The file.
    YIELDS (str): The texts.
    """
    import srsly  # numpy with it: not at the CLI's start

    path = Path(path)
    if not path.exists():
        raise ValueError(f"[distill-corpus] {path}: no such file.")
    jsonl = path.suffix == ".jsonl"
    with path.open(encoding="utf8") as file_:
        for line_no, line in enumerate(file_, 1):
            if not line.strip():
                continue
            if not jsonl:
                yield line.strip()
                continue
            try:
                record = srsly.json_loads(line)
            except ValueError as err:
                raise ValueError(f"[distill-corpus] {path}, line {line_no}: invalid JSON ({err}).") from err
            text = record.get("text") if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise ValueError(f"[distill-corpus] {path}, line {line_no}, field 'text': expected a string.")
            yield text


@app.command("distill-corpus")
def distill_corpus_cli(
    teacher: Path = typer.Argument(..., help="Trained teacher pipeline (with transformer_ner)"),
    output: Path = typer.Argument(..., help="Output .spacy file"),
    docs: List[Path] = typer.Option([], "--docs", help="Annotated .spacy corpus (gold kept)"),
    text: List[Path] = typer.Option([], "--text", help="Unlabelled text: .txt (a doc per line) or .jsonl ('text')"),
    component: str = typer.Option("transformer_ner", "--component", help="The teacher's NER component"),
    batch_size: int = typer.Option(32, "--batch-size", help="Docs per teacher batch"),
    gpu_id: Optional[int] = typer.Option(None, "--gpu-id", help="GPU to run the teacher on"),
) -> None:
    """Store the teacher's per-token tag distributions on every doc, so that a
    student `transformer_ner` trained on OUTPUT (`spacy train CONFIG
    --paths.train OUTPUT`) learns from gold and teacher together (weight:
    the student's distill_weight)."""
    if not docs and not text:
        msg.fail("Give --docs and/or --text to label.", exits=1)
    import spacy
    from spacy.tokens import DocBin

    from ..training.distill import distill_corpus

    if gpu_id is not None and gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    nlp = spacy.load(teacher)
    gold = [doc for path in docs for doc in DocBin().from_disk(path).get_docs(nlp.vocab)]
    raw = (t for path in text for t in read_texts(path))
    out = DocBin(store_user_data=True)
    n_words = 0
    # A plain line, not a spinner: this usually runs in logs (project.yml).
    msg.info(f"Labelling with the teacher {teacher}...")
    for doc in distill_corpus(nlp, docs=gold, texts=raw, component=component, batch_size=batch_size):
        out.add(doc)
        n_words += len(doc)
    output.parent.mkdir(parents=True, exist_ok=True)
    out.to_disk(output)
    msg.good(f"Saved {len(out)} docs ({len(gold)} annotated, {len(out) - len(gold)} raw; {n_words:,} words) to {output}")
