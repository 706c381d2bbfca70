"""BC5CDR NER, fp32 vs dynamic int8: the trained `transformer_ner` (CRF, MiniLM)
pipeline of benchmarks/bc5cdr_ner.py before and after
`python -m spacy_llm_ner quantize`, measured the same way.

Needs bc5cdr_ner.py's trained `ours_crf` run (benchmarks/work/bc5cdr/ours_crf)
and its converted test split (converted from <data>/bc5cdr if missing).

    python benchmarks/quantize_bc5cdr.py all
    python benchmarks/quantize_bc5cdr.py quantize --model M --output OUT   # any other pipeline

Stages (each can be run alone): quantize, measure-all, report. Per pipeline:
test entity P/R/F (spaCy's Scorer through `nlp.evaluate`), agreement of the
int8 entities with the fp32 ones, `nlp.pipe` words/second (batch 64, best of
2, words = spaCy tokens), single-doc latency (median ms of `nlp(text)` over
200 test abstracts), peak RSS, size on disk. 2 torch threads. Each
measurement runs in a fresh process, so its peak RSS is its own. Writes
benchmarks/results/quantize_bc5cdr.json and .md.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Dict, List, Set, Tuple

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bc5cdr_ner  # noqa: E402  (converted splits)
from common import BC5CDR_WORK, RESULTS, ROOT, relative, typer_app  # noqa: E402

WORK = BC5CDR_WORK
FP32 = WORK / "ours_crf" / "model-best"
INT8 = WORK / "ours_crf_int8"
SYSTEMS: Dict[str, Path] = {"fp32": FP32, "int8": INT8}
MEASUREMENTS = ("accuracy", "throughput", "latency")
THREADS = 2
BATCH_SIZE = 64
N_LATENCY = 200

app = typer_app(__doc__)


def folder_mb(path: Path) -> float:
    from spacy_llm_ner.ml.rewrite import size_on_disk

    return size_on_disk(path) / 1e6


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@app.command()
def quantize(
    model: Annotated[Path, typer.Option(help="Trained fp32 pipeline", show_default=relative(FP32))] = FP32,
    output: Annotated[Path, typer.Option(help="Where to save the int8 pipeline", show_default=relative(INT8))] = INT8,
    force: Annotated[bool, typer.Option(help="Quantize again if OUTPUT exists")] = False,
) -> None:
    """Quantize the fp32 pipeline with the package's CLI."""
    if output.exists() and not force:
        print(f"{output} exists (--force to redo)")
        return
    subprocess.run([sys.executable, "-m", "spacy_llm_ner", "quantize", str(model), str(output)], check=True, cwd=ROOT)


def _texts_and_gold(nlp) -> Tuple[List[str], list]:
    from spacy.tokens import DocBin

    gold = list(DocBin().from_disk(WORK / "test.spacy").get_docs(nlp.vocab))
    return [doc.text for doc in gold], gold


@app.command()
def measure(model: Path, kind: str, output: Path) -> None:
    """One measurement of one pipeline (run in its own process by
    measure-all): accuracy, throughput or latency."""
    import spacy
    import torch
    from spacy.scorer import Scorer
    from spacy.training import Example

    if kind not in MEASUREMENTS:
        raise typer.BadParameter(f"kind must be one of {MEASUREMENTS}")
    torch.set_num_threads(THREADS)
    nlp = spacy.load(model)
    texts, gold = _texts_and_gold(nlp)
    result: Dict
    if kind == "accuracy":
        # What `nlp.evaluate` does (text re-tokenized, spaCy's Scorer), with
        # the predicted docs kept to compare int8 with fp32 entity by entity.
        docs = nlp.pipe((nlp.make_doc(doc.text) for doc in gold), batch_size=BATCH_SIZE)
        examples = [Example(doc, ref) for doc, ref in zip(docs, gold)]
        scores = Scorer(nlp).score(examples)
        result = {k: scores[k] for k in ("ents_p", "ents_r", "ents_f", "ents_per_type")}
        result["predicted"] = [[[e.start_char, e.end_char, e.label_] for e in eg.predicted.ents] for eg in examples]
    elif kind == "throughput":
        # As benchmarks/bc5cdr_ner.py: warm-up, then best of 2 over the test set.
        list(nlp.pipe(texts[:32]))
        best = 0.0
        for _ in range(2):
            start = time.perf_counter()
            n_words = sum(len(doc) for doc in nlp.pipe(texts, batch_size=BATCH_SIZE))
            best = max(best, n_words / (time.perf_counter() - start))
        result = {"words": n_words, "words_per_second": best}
    else:
        for text in texts[:5]:  # warm-up
            nlp(text)
        latencies = []
        for text in texts[:N_LATENCY]:
            start = time.perf_counter()
            nlp(text)
            latencies.append((time.perf_counter() - start) * 1000)
        result = {"latency_ms_median": statistics.median(latencies), "latency_docs": len(latencies)}
    result["peak_rss_mb"] = peak_rss_mb()
    output.write_text(json.dumps(result, indent=2))


def agreement(reference: List[list], other: List[list]) -> Dict[str, float]:
    """Entity-level agreement of two systems' predictions on the same docs:
    F1 of `other` taken against `reference`, and the share of docs whose
    entities are identical."""
    ref: Set[tuple] = {(i, *e) for i, ents in enumerate(reference) for e in ents}
    got: Set[tuple] = {(i, *e) for i, ents in enumerate(other) for e in ents}
    both = len(ref & got)
    f1 = 2 * both / (len(ref) + len(got)) if ref or got else 1.0
    same = sum(sorted(map(tuple, a)) == sorted(map(tuple, b)) for a, b in zip(reference, other))
    return {"ents_f_vs_fp32": f1, "docs_identical": same / max(len(reference), 1)}


@app.command("measure-all")
def measure_all() -> None:
    """Every measurement of every pipeline, each in a fresh process."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    bc5cdr_ner.convert()
    results: Dict[str, Dict] = {}
    for name, model in SYSTEMS.items():
        if not model.exists():
            print(f"skip {name}: {model} missing")
            continue
        row: Dict = {"model": str(model.relative_to(ROOT)), "size_mb": folder_mb(model), "peak_rss_mb": {}}
        for kind in MEASUREMENTS:
            out = WORK / f"quantize_{name}_{kind}.json"
            subprocess.run([sys.executable, __file__, "measure", str(model), kind, str(out)], check=True, cwd=ROOT, env=env)
            measured = json.loads(out.read_text())
            row["peak_rss_mb"][kind] = measured.pop("peak_rss_mb")
            row.update(measured)
        results[name] = row
        print(name, {k: v for k, v in row.items() if k not in ("ents_per_type", "predicted")})
    if "fp32" in results and "int8" in results:
        results["int8"].update(agreement(results["fp32"]["predicted"], results["int8"]["predicted"]))
    (WORK / "quantize_bc5cdr.json").write_text(json.dumps(results, indent=2))


@app.command()
def report() -> None:
    """JSON and Markdown table from measure-all's results."""
    import torch

    results = json.loads((WORK / "quantize_bc5cdr.json").read_text())
    for row in results.values():
        row.pop("predicted", None)
    fp32 = results.get("fp32", {})
    lines = [
        "| transformer_ner (CRF, MiniLM) | P | R | F | Chemical F | Disease F | words/s | × fp32 "
        "| latency ms/doc | peak RSS MB | size MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        per = r.get("ents_per_type", {})
        speedup = r["words_per_second"] / fp32["words_per_second"] if fp32 else float("nan")
        lines.append(
            f"| {name} | {r['ents_p']:.3f} | {r['ents_r']:.3f} | {r['ents_f']:.3f} "
            f"| {per.get('Chemical', {}).get('f', 0):.3f} | {per.get('Disease', {}).get('f', 0):.3f} "
            f"| {r['words_per_second']:,.0f} | {speedup:.2f} | {r['latency_ms_median']:.1f} "
            f"| {max(r['peak_rss_mb'].values()):,.0f} | {r['size_mb']:,.1f} |"
        )
    notes = [
        "",
        f"BC5CDR test set, {THREADS} torch threads, `nlp.pipe` batch {BATCH_SIZE} (best of 2), latency = median "
        f"of `nlp(text)` over {N_LATENCY} docs; peak RSS = the largest of the accuracy, throughput and latency "
        f"processes; torch {torch.__version__}, quantized engine {torch.backends.quantized.engine}.",
    ]
    if "ents_f_vs_fp32" in results.get("int8", {}):
        r = results["int8"]
        notes.append(
            f"int8 vs fp32 predictions: entity F1 {r['ents_f_vs_fp32']:.3f}, identical entities on "
            f"{r['docs_identical']:.1%} of test docs."
        )
    results["_settings"] = {
        "threads": THREADS, "batch_size": BATCH_SIZE, "latency_docs": N_LATENCY,
        "torch": torch.__version__, "quantized_engine": torch.backends.quantized.engine,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quantize_bc5cdr.json").write_text(json.dumps(results, indent=2))
    text = "\n".join(lines + notes) + "\n"
    (RESULTS / "quantize_bc5cdr.md").write_text(text)
    print(text)


@app.command("all")
def run_all(force: Annotated[bool, typer.Option(help="Quantize again if the int8 pipeline exists")] = False) -> None:
    """quantize, measure-all, report."""
    quantize(FP32, INT8, force)
    measure_all()
    report()


if __name__ == "__main__":
    app()
