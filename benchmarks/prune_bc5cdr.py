"""BC5CDR structured pruning: the trained MiniLM teacher (configs/ner.cfg as
trained by benchmarks/ner_ablation.py, `ours_crf_lexical`) with whole layers
and attention heads removed, each recovered by a short fine-tune on the
training set with the teacher's tag distributions (`python -m spacy_llm_ner
prune`), and each also quantized to int8 on top (`quantize`).

Needs the trained teacher and the converted splits in benchmarks/work/bc5cdr.

    python benchmarks/prune_bc5cdr.py all
    python benchmarks/prune_bc5cdr.py prune --only pruned_l4_h8 --steps 500

This script only makes the pipelines (benchmarks/work/bc5cdr/pruned_*); their
test F, latency and words/second are measured by `benchmarks/frontier.py
all`, which lists them beside the teacher, its int8 copy and the CNN
students, in the same interleaved speed rounds (a speed measured in another
process, at another time, on this shared machine would not compare).
Iterative settings (6 -> 4 -> 3 -> 2 layers) prune the previous setting's
recovered pipeline, with the original teacher as soft targets (`--teacher`).
"""
import json
import sys
from pathlib import Path
from typing import Dict, List

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bc5cdr_ner import run  # noqa: E402  (subprocess runner with a log)
from common import BC5CDR_WORK, RESULTS, typer_app  # noqa: E402

WORK = BC5CDR_WORK
TEACHER = WORK / "ours_crf_lexical" / "model-best"
STEPS_DEFAULT = 2000
# name -> prune options; "from": prune that setting's output, not the teacher.
SETTINGS: Dict[str, Dict] = {
    "pruned_h8": {"args": ["--heads-per-layer", "8"]},
    "pruned_l4": {"args": ["--layers", "4"]},
    "pruned_l4_h8": {"args": ["--layers", "4", "--heads-per-layer", "8"]},
    "pruned_l3": {"args": ["--layers", "3"], "from": "pruned_l4"},
    "pruned_l3_h8": {"args": ["--layers", "3", "--heads-per-layer", "8"], "from": "pruned_l4_h8"},
    "pruned_l2": {"args": ["--layers", "2"], "from": "pruned_l3"},
}

app = typer_app(__doc__)


def prune_one(name: str, *, steps: int) -> None:
    """Prune, recover and quantize one setting (skipped when it exists)."""
    settings = SETTINGS[name]
    out = WORK / name
    if not out.exists():
        source = WORK / settings["from"] if "from" in settings else TEACHER
        if "from" in settings:
            prune_one(settings["from"], steps=steps)
        seconds = run(
            [sys.executable, "-m", "spacy_llm_ner", "prune", str(source), str(out),
             "--data", str(WORK / "train.spacy"), "--steps", str(steps), "--teacher", str(TEACHER),
             *settings["args"]],
            WORK / f"prune_{name}.log",
        )
        (out / "prune_seconds.json").write_text(json.dumps({"seconds": seconds, "steps": steps}))
    int8 = WORK / f"{name}_int8"
    if not int8.exists():
        run([sys.executable, "-m", "spacy_llm_ner", "quantize", str(out), str(int8)], WORK / f"quantize_{name}.log")


@app.command()
def prune(steps: int = STEPS_DEFAULT, only: str = "") -> None:
    """Each setting (or --only one): prune, recover `steps` updates, quantize."""
    names: List[str] = [only] if only else list(SETTINGS)
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        raise typer.BadParameter(f"Unknown settings {unknown}: expected some of {list(SETTINGS)}.")
    if not TEACHER.exists():
        raise typer.BadParameter(f"No teacher at {TEACHER}: run benchmarks/ner_ablation.py first.")
    for name in names:
        prune_one(name, steps=steps)


@app.command()
def compare(rounds: int = 3) -> None:
    """A quick look before `frontier.py all`: the teacher and every pruned
    pipeline that exists, test F (spaCy's Scorer over the converted test set)
    and nlp.pipe words/s in interleaved rounds in one process (best round),
    2 threads. Writes benchmarks/results/prune_bc5cdr.json and .md."""
    import time

    import spacy
    import torch
    from spacy.scorer import Scorer
    from spacy.tokens import DocBin
    from spacy.training import Example

    torch.set_num_threads(2)
    names = ["teacher"] + [p.name for p in sorted(WORK.glob("pruned_*")) if (p / "meta.json").exists()]
    paths = {n: TEACHER if n == "teacher" else WORK / n for n in names}
    nlps = {n: spacy.load(p) for n, p in paths.items()}
    gold = list(DocBin().from_disk(WORK / "test.spacy").get_docs(nlps["teacher"].vocab))
    texts, n_words = [d.text for d in gold], sum(len(d) for d in gold)
    out: Dict[str, Dict] = {}
    for name, nlp in nlps.items():
        examples = [Example(p, g) for p, g in zip(nlp.pipe(texts, batch_size=64), gold)]
        scores = Scorer.score_spans(examples, "ents")
        out[name] = {k: round(scores[k], 4) for k in ("ents_p", "ents_r", "ents_f")}
        out[name]["size_mb"] = round(sum(p.stat().st_size for p in paths[name].rglob("*") if p.is_file()) / 2**20, 1)
        meta = json.loads((paths[name] / "meta.json").read_text())
        out[name]["pruned"] = meta.get("pruned")
        seconds = paths[name] / "prune_seconds.json"
        out[name]["prune"] = json.loads(seconds.read_text()) if seconds.exists() else None
    speeds: Dict[str, List[float]] = {n: [] for n in nlps}
    for _ in range(rounds):
        for name, nlp in nlps.items():
            start = time.perf_counter()
            list(nlp.pipe(texts, batch_size=64))
            speeds[name].append(n_words / (time.perf_counter() - start))
    for name in nlps:
        out[name]["words_per_s"] = round(max(speeds[name]))
        out[name]["x_teacher"] = round(max(speeds[name]) / max(speeds["teacher"]), 2)
        out[name]["f_lost"] = round(out["teacher"]["ents_f"] - out[name]["ents_f"], 4)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "prune_bc5cdr.json").write_text(json.dumps({"n_words": n_words, "rounds": rounds, "systems": out}, indent=2))
    lines = [
        "# Pruning on BC5CDR: quick comparison (`benchmarks/prune_bc5cdr.py compare`)", "",
        f"Test set {n_words:,} words; F by spaCy's Scorer; words/s: best of {rounds} interleaved `nlp.pipe` rounds in "
        "one process, 2 threads. The frontier's full protocol is `benchmarks/frontier.py all`.", "",
        "| system | P | R | F | F lost | words/s | × teacher | MB |", "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in out.items():
        lines.append(f"| {name} | {r['ents_p']:.3f} | {r['ents_r']:.3f} | {r['ents_f']:.3f} | {r['f_lost']:+.3f} | "
                     f"{r['words_per_s']:,} | {r['x_teacher']} | {r['size_mb']} |")
    (RESULTS / "prune_bc5cdr.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


@app.command("all")
def run_all(steps: int = STEPS_DEFAULT) -> None:
    """Every setting; then run `python benchmarks/frontier.py all`."""
    prune(steps=steps)


if __name__ == "__main__":
    app()
