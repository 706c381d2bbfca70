"""BC5CDR continual learning (#24): a trained pipeline resumed on new data
only, with and without rehearsal, against training on everything at once.

The training abstracts are split into two halves, A (even positions) and B
(odd). (b) a new entity type: a Chemical-only pipeline trained on half A
(Disease mentions left unannotated, "O", as in a Chemical-only corpus), then
resumed on half B annotated for Disease only, the Disease label added to
its trained head (`spacy_llm_ner.add_ner_labels.v1`): plainly, and with
rehearsal (`spacy_llm_ner.rehearsal_corpus.v1`: the Chemical pipeline's own
tag distributions on B's text as soft targets outside B's Disease gold).
(a) more data of the same types: a pipeline trained on half A with both
types, then resumed on half B with both types, plainly and with rehearsal.
The baseline for both is one pipeline trained on all of train at once. Every
run is configs/ner.cfg (MiniLM, CRF) for the same number of steps; resumed
runs source both components (`[components.*] source`) from the step before.

Test P/R/F, overall and per type, of each run's model-best (selected on
dev: Chemical-only dev for the Chemical-only run, full dev for the others)
and model-last (after all its steps: where forgetting shows undisguised by
checkpoint selection).

    python benchmarks/continual.py all --steps 500
    python benchmarks/continual.py all --steps 4 --limit 8   # a smoke run, minutes

Stages: data (halves and label-filtered copies of the converted BC5CDR
splits), train (each run, in order; a run already trained for the same
steps is kept), evaluate, report. Writes benchmarks/results/continual.json
and .md.
"""
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Dict, List, Optional

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bc5cdr_ner  # noqa: E402  (conversion, training runs, test scores)
from common import BC5CDR_WORK, RESULTS, ROOT, WORK_ROOT, typer_app  # noqa: E402

STEPS_DEFAULT = 500
# name -> what it is trained on, from what, how. "source": the run whose
# model-best is resumed; "add": labels added to the sourced component.
RUNS: Dict[str, Dict] = {
    "chem_A": {"case": "b", "train": "A_chem", "dev": "dev_chem", "about": "Chemical only, half A"},
    "dis_B_plain": {
        "case": "b", "train": "B_dis", "source": "chem_A", "add": ["Disease"],
        "about": "+ Disease on half B, no rehearsal",
    },
    "dis_B_rehearsal": {
        "case": "b", "train": "B_dis", "source": "chem_A", "add": ["Disease"], "rehearsal": True,
        "about": "+ Disease on half B, rehearsal",
    },
    "all_A": {"case": "a", "train": "A_all", "about": "both types, half A"},
    "all_B_plain": {"case": "a", "train": "B_all", "source": "all_A", "about": "then half B, no rehearsal"},
    "all_B_rehearsal": {
        "case": "a", "train": "B_all", "source": "all_A", "rehearsal": True, "about": "then half B, rehearsal",
    },
    "joint": {"case": "baseline", "train": "train", "about": "both types, all of train at once"},
}
CHECKPOINTS = ("model-best", "model-last")
app = typer_app(__doc__)


def work_dir(limit: int) -> Path:
    """Where a run's data and pipelines go: smoke runs (--limit) apart from
    the full ones."""
    return WORK_ROOT / (f"continual_limit{limit}" if limit else "continual")


def _filtered(docs: List, label: Optional[str]) -> List:
    """Copies of gold docs with the entities of one label (the others "O",
    as a corpus annotated for that label alone has them), or all."""
    out = []
    for doc in docs:
        doc = doc.copy()
        if label is not None:
            doc.set_ents([ent for ent in doc.ents if ent.label_ == label], default="outside")
        out.append(doc)
    return out


@app.command()
def data(limit: Annotated[int, typer.Option(help="Docs per split, for a smoke run (0: all)")] = 0) -> None:
    """Convert BC5CDR (once) and write the halves and label-filtered copies."""
    import spacy
    from spacy.tokens import DocBin

    bc5cdr_ner.convert()
    work = work_dir(limit)
    work.mkdir(parents=True, exist_ok=True)
    vocab = spacy.blank("en").vocab
    split = {name: list(DocBin().from_disk(BC5CDR_WORK / f"{name}.spacy").get_docs(vocab)) for name in
             ("train", "dev", "test")}
    if limit:
        split = {name: docs[:limit] for name, docs in split.items()}
    half_a, half_b = split["train"][0::2], split["train"][1::2]
    files = {
        "A_chem": _filtered(half_a, "Chemical"), "A_all": _filtered(half_a, None),
        "B_dis": _filtered(half_b, "Disease"), "B_all": _filtered(half_b, None),
        "train": split["train"], "dev": split["dev"], "dev_chem": _filtered(split["dev"], "Chemical"),
        "test": split["test"],
    }
    for name, docs in files.items():
        DocBin(docs=docs).to_disk(work / f"{name}.spacy")
    counts = {name: {"docs": len(docs), "ents": sum(len(d.ents) for d in docs)} for name, docs in files.items()}
    (work / "data.json").write_text(json.dumps(counts, indent=2))


def write_config(name: str, work: Path) -> Path:
    """configs/ner.cfg for one run: from scratch, or both components sourced
    from the run before with its new labels and, for rehearsal, the rehearsal
    corpus with that run's pipeline as the teacher."""
    from spacy import util

    settings = RUNS[name]
    config = util.load_config(ROOT / "configs" / "ner.cfg", interpolate=False)
    if "source" in settings:
        previous = str(work / settings["source"] / "model-best")
        config["components"] = {component: {"source": previous} for component in config["nlp"]["pipeline"]}
        if settings.get("add"):
            config["initialize"]["after_init"] = {
                "@callbacks": "spacy_llm_ner.add_ner_labels.v1", "component": "transformer_ner",
                "labels": settings["add"],
            }
        if settings.get("rehearsal"):
            config["corpora"]["train"] = {
                "@readers": "spacy_llm_ner.rehearsal_corpus.v1", "path": "${paths.train}", "teacher": previous,
                "component": "transformer_ner",
            }
    path = work / f"{name}.cfg"
    config.to_disk(path)
    return path


@app.command()
def train(
    steps: int = STEPS_DEFAULT,
    eval_frequency: int = 100,
    limit: Annotated[int, typer.Option(help="As given to `data`")] = 0,
    only: Annotated[str, typer.Option(help="Comma-separated run names (their sources must be trained)")] = "",
) -> None:
    """`spacy train` each run, in order, for `steps` steps."""
    work = work_dir(limit)
    names = [name for name in RUNS if not only or name in only.split(",")]
    for name in names:
        settings, out = RUNS[name], work / name
        if bc5cdr_ner.is_trained(out, steps):
            continue
        bc5cdr_ner.train_pipeline(
            write_config(name, work), out, train=work / f"{settings['train']}.spacy",
            dev=work / f"{settings.get('dev', 'dev')}.spacy", steps=steps, eval_frequency=min(eval_frequency, steps),
            log=work / f"train_{name}.log",
        )


@app.command()
def evaluate(limit: Annotated[int, typer.Option(help="As given to `data`")] = 0) -> None:
    """Test scores of each trained run's model-best and model-last."""
    work = work_dir(limit)
    for name in RUNS:
        scores = {
            checkpoint: bc5cdr_ner.test_scores(work / name / checkpoint, work / "test.spacy")
            for checkpoint in CHECKPOINTS if (work / name / checkpoint).exists()
        }
        if scores:
            (work / name / "test_scores.json").write_text(json.dumps(scores, indent=2))


def _f(scores: Dict, label: Optional[str]) -> str:
    if label is None:
        return f"{scores['ents_f']:.3f}"
    per = (scores.get("ents_per_type") or {}).get(label)
    return f"{per['f']:.3f}" if per else "-"


@app.command()
def report(limit: Annotated[int, typer.Option(help="As given to `data`")] = 0) -> None:
    """benchmarks/results/continual.json and .md from the runs' scores."""
    work = work_dir(limit)
    rows = {}
    for name, settings in RUNS.items():
        scores_file, seconds_file = work / name / "test_scores.json", work / name / "train_seconds.json"
        if not scores_file.exists():
            continue
        trained = json.loads(seconds_file.read_text()) if seconds_file.exists() else {}
        rows[name] = {
            **{key: settings.get(key) for key in ("case", "about", "train", "source", "add", "rehearsal")},
            "steps": trained.get("steps"), "train_seconds": trained.get("seconds"),
            "test": json.loads(scores_file.read_text()),
        }
    data_counts = json.loads((work / "data.json").read_text()) if (work / "data.json").exists() else {}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "continual.json").write_text(json.dumps({"limit": limit, "data": data_counts, "runs": rows}, indent=2))
    lines = [
        "| case | run | from | steps | Chemical F | Disease F | F | Chemical F (last) | Disease F (last) | F (last) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        best, last = row["test"].get("model-best", {}), row["test"].get("model-last", {})
        cells = [_f(s, label) if s else "" for s in (best, last) for label in ("Chemical", "Disease", None)]
        lines.append(
            f"| {row['case']} | {name}: {row['about']} | {row['source'] or 'scratch'} | {row['steps']} | "
            + " | ".join(cells) + " |"
        )
    note = (
        "BC5CDR test, configs/ner.cfg (MiniLM, CRF). F: model-best (selected on dev); (last): model-last. "
        "(b): Chemical on half A, then Disease on half B; (a): both types on half A, then on half B; "
        "baseline: all of train at once."
    )
    if limit:
        note += f" SMOKE RUN: {limit} docs per split, not a measurement."
    (RESULTS / "continual.md").write_text(note + "\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


@app.command("all")
def run_all(
    steps: int = STEPS_DEFAULT,
    eval_frequency: int = 100,
    limit: Annotated[int, typer.Option(help="Docs per split, for a smoke run (0: all)")] = 0,
) -> None:
    """data, train, evaluate, report."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    data(limit=limit)
    train(steps=steps, eval_frequency=eval_frequency, limit=limit)
    evaluate(limit=limit)
    report(limit=limit)


if __name__ == "__main__":
    app()
