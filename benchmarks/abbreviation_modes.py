"""Test P/R/F of a trained `transformer_ner` pipeline under each
`abbreviations` mode ("none", "propagate", "consistent"), the same weights
in one process: what document-level abbreviation consistency adds or costs
on a corpus.

    python benchmarks/abbreviation_modes.py measure MODEL TEST.spacy --name bc5cdr
    python benchmarks/abbreviation_modes.py report

MODEL is a pipeline trained with `configs/ner.cfg` (e.g. by
`benchmarks/ner_ablation.py train --only lexical` for BC5CDR, or `spacy
train configs/ner.cfg` on WNUT-17 converted with `python -m spacy_llm_ner
convert`). `--label` names the code the figures were measured with (run it
once with an older checkout on PYTHONPATH to compare rules). Writes
benchmarks/results/abbreviation_modes.json and .md.
"""
import json
from pathlib import Path
from typing import Dict, List

import typer

from common import RESULTS, typer_app

app = typer_app(__doc__, data_callback=False)
OUT = RESULTS / "abbreviation_modes.json"
MODES = ("none", "propagate", "consistent")


def _scores(model: Path, test: Path, mode: str) -> Dict:
    import spacy
    from spacy.scorer import Scorer
    from spacy.tokens import DocBin
    from spacy.training import Example

    nlp = spacy.load(model, config={"components": {"transformer_ner": {"abbreviations": mode}}})
    refs = list(DocBin().from_disk(test).get_docs(nlp.vocab))
    examples = [Example(p, r) for p, r in zip(nlp.pipe([d.text for d in refs], batch_size=64), refs)]
    s = Scorer.score_spans(examples, "ents")
    return {
        "p": s["ents_p"], "r": s["ents_r"], "f": s["ents_f"],
        "per_type_f": {k: v["f"] for k, v in (s["ents_per_type"] or {}).items()},
        "n_predicted": sum(len(e.predicted.ents) for e in examples),
    }


@app.command()
def measure(
    model: Path = typer.Argument(..., exists=True, file_okay=False),
    test: Path = typer.Argument(..., exists=True, dir_okay=False),
    name: str = typer.Option(..., help="Corpus name for the table, e.g. bc5cdr"),
    label: str = typer.Option("current", help="Which code measured it (e.g. 'current', 'before #25')"),
    modes: List[str] = typer.Option(list(MODES), "--mode"),
) -> None:
    """Score MODEL on TEST under each mode and add the rows to the results."""
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    for mode in modes:
        row = _scores(model, test, mode)
        results.setdefault(name, {}).setdefault(label, {})[mode] = row
        print(f"{name} [{label}] {mode}: P {row['p']:.4f} R {row['r']:.4f} F {row['f']:.4f} ({row['n_predicted']} ents)")
    OUT.write_text(json.dumps(results, indent=1) + "\n")
    report()


@app.command()
def report() -> None:
    """Write the Markdown table from the JSON."""
    results = json.loads(OUT.read_text())
    lines = ["# Abbreviation modes: test P/R/F of one trained pipeline per corpus", "",
             "| corpus | code | mode | P | R | F | F − none | entities |", "|---|---|---|---|---|---|---|---|"]
    for name, by_label in results.items():
        base = next((rows["none"]["f"] for rows in by_label.values() if "none" in rows), None)
        for label, rows in by_label.items():
            for mode, row in rows.items():
                delta = "" if base is None else f"{100 * (row['f'] - base):+.2f}"
                lines.append(
                    f"| {name} | {label} | {mode} | {row['p']:.4f} | {row['r']:.4f} | {row['f']:.4f} | {delta} | "
                    f"{row['n_predicted']:,} |"
                )
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    app()
