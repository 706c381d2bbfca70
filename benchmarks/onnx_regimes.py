"""Speed on every kind of text (#26): torch fp32, torch int8 and bf16
(`quantize`, `--method bf16`), ONNX fp32 and ONNX int8 (`export-onnx`) of the trained MiniLM
`transformer_ner` pipelines beside the bare-backbone ceiling, on three
document-length regimes.

    short      WNUT-17 test tweets (one doc per tweet), the WNUT-17 pipeline
    medium     BC5CDR test titles and sentences (one doc per sentence)
    long       BC5CDR test abstracts, and abstracts joined into ~2,000-word docs

Needs the trained pipelines and converted test sets under WORK (`--work`,
default benchmarks/work): bc5cdr/ours_crf_lexical/model-best
(ner_ablation.py) with bc5cdr/test.spacy, wnut17/shipped/model-best
(`configs/ner.cfg` trained on WNUT-17) with wnut17/test.spacy. The pipelines
are used as saved (no load-time overrides).

    python benchmarks/onnx_regimes.py prepare    # torch int8, ONNX fp32 and int8 of both, if missing
    python benchmarks/onnx_regimes.py accuracy   # entity P/R/F of every system on every regime
    python benchmarks/onnx_regimes.py speed      # words/s, each system beside the ceiling
    python benchmarks/onnx_regimes.py report
    python benchmarks/onnx_regimes.py all

words/s: `nlp.pipe` batch 64 over the regime's texts (at most --max-words of
them), each system in a fresh process beside the ceiling, taking turns, best
of 3 rounds; 2 threads (torch, and onnxruntime's sessions follow torch's
count). One process per system: torch's and onnxruntime's thread pools in
one process slow each other down (torch fp32 lost 3-4x beside the others).
Writes benchmarks/results/onnx_regimes.{json,md,png}.
"""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Dict, List, Tuple

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bc5cdr_ner  # noqa: E402  (pipe_runner, ceiling_runner, interleaved_words_per_second)
from common import RESULTS, ROOT, WORK_ROOT  # noqa: E402

SYSTEMS = ("torch fp32", "torch int8", "torch bf16", "onnx fp32", "onnx int8")
# How each system is made from the trained (torch fp32) pipeline.
MAKE = {
    "torch int8": ["quantize"],
    "torch bf16": ["quantize", "--method", "bf16"],
    "onnx fp32": ["export-onnx"],
    "onnx int8": ["export-onnx", "--int8"],
}
SOURCES = {"bc5cdr": "bc5cdr/ours_crf_lexical/model-best", "wnut17": "wnut17/shipped/model-best"}
REGIMES = {
    "short: WNUT-17 tweets": ("wnut17", "sentences"),
    "medium: BC5CDR sentences": ("bc5cdr", "sentences"),
    "long: BC5CDR abstracts": ("bc5cdr", "docs"),
    "long: BC5CDR ~2,000-word docs": ("bc5cdr", "joined"),
}
CEILING = "ceiling: bare MiniLM forward"
JOINED_WORDS = 2000
SETTINGS = {"work": WORK_ROOT}
# The HF tokenizer's own thread pool, busy once per batch, takes a core from
# torch's OpenMP threads on a 2-core machine (as the other benchmarks set it;
# inherited by the measuring processes).
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(add_completion=False, help=__doc__.strip().split("\n\n")[0], rich_markup_mode=None)


@app.callback()
def settings(
    work: Annotated[Path, typer.Option(help="Folder of the trained pipelines and test sets", show_default="benchmarks/work")] = WORK_ROOT,
) -> None:
    SETTINGS["work"] = work.resolve()


def out_dir() -> Path:
    return WORK_ROOT / "onnx_regimes"


def model_path(corpus: str, system: str) -> Path:
    if system == "torch fp32":
        return SETTINGS["work"] / SOURCES[corpus]
    return out_dir() / f"{corpus}_{system.replace(' ', '_')}"


@app.command()
def prepare(force: Annotated[bool, typer.Option(help="Make them again")] = False) -> None:
    """torch int8 (`quantize`), ONNX fp32 and int8 (`export-onnx`) of both
    trained pipelines, with the package's CLI."""
    out_dir().mkdir(parents=True, exist_ok=True)
    for corpus in SOURCES:
        for system, command in MAKE.items():
            target = model_path(corpus, system)
            if target.exists() and not force:
                print(f"{target} exists")
                continue
            cmd = [sys.executable, "-m", "spacy_llm_ner", command[0], str(model_path(corpus, "torch fp32")), str(target)]
            subprocess.run(cmd + command[1:], check=True, cwd=ROOT)


def regime_docs(regime: str, vocab) -> List:
    """The gold docs of a regime."""
    from spacy.tokens import Doc, DocBin

    corpus, unit = REGIMES[regime]
    docs = list(DocBin().from_disk(SETTINGS["work"] / corpus / "test.spacy").get_docs(vocab))
    if unit == "sentences":
        # The converters keep the corpora's sentences (tweets, PubTator
        # sentences and titles); entities inside one are kept with it.
        return [sent.as_doc() for doc in docs for sent in doc.sents if sent.text.strip()]
    if unit == "docs":
        return docs
    joined, current = [], []
    for doc in docs:
        current.append(doc)
        if sum(len(d) for d in current) >= JOINED_WORDS:
            joined.append(Doc.from_docs(current))
            current = []
    return joined + ([Doc.from_docs(current)] if current else [])


def _capped(texts: List[str], max_words: int) -> List[str]:
    out, words = [], 0
    for text in texts:
        if words >= max_words:
            break
        out.append(text)
        words += len(text.split())
    return out


SYSTEMS_HELP = "Only these systems (comma-separated), e.g. 'torch fp32,torch bf16'"


def _systems(systems: str) -> List[str]:
    chosen = [name.strip() for name in systems.split(",") if name.strip()] or list(SYSTEMS)
    unknown = [name for name in chosen if name not in SYSTEMS]
    if unknown:
        raise typer.BadParameter(f"Unknown systems {unknown}: expected some of {list(SYSTEMS)}.")
    return chosen


@app.command()
def accuracy(
    only: Annotated[str, typer.Option(help="Only the regimes whose name contains one of these (comma-separated)")] = "",
    systems: Annotated[str, typer.Option(help=SYSTEMS_HELP)] = "",
) -> None:
    """Entity P/R/F (spaCy's Scorer) of each system on each regime, every
    pipeline loaded once."""
    import spacy
    import torch
    from spacy.scorer import Scorer
    from spacy.training import Example

    torch.set_num_threads(2)
    results: Dict[str, Dict] = {}
    for system in _systems(systems):
        for corpus in SOURCES:
            nlp = spacy.load(model_path(corpus, system))
            for regime, (regime_corpus, _) in REGIMES.items():
                if regime_corpus != corpus or (only and not any(part in regime for part in only.split(","))):
                    continue
                gold = regime_docs(regime, nlp.vocab)
                predicted = nlp.pipe((doc.text for doc in gold), batch_size=64)
                scores = Scorer(nlp).score([Example(p, g) for p, g in zip(predicted, gold)])
                results.setdefault(regime, {})[system] = {k: scores[k] for k in ("ents_p", "ents_r", "ents_f")}
                print(regime, system, results[regime][system], flush=True)
    out_dir().mkdir(parents=True, exist_ok=True)
    path = out_dir() / "accuracy.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    for regime, scores in results.items():
        previous.setdefault(regime, {}).update(scores)
    path.write_text(json.dumps(previous, indent=2))


@app.command("speed-one")
def speed_one(regime: str, system: str, output: Path, repeats: int = 3, max_words: int = 40000) -> None:
    """words/s of one system and of the ceiling on one regime, in this
    process, taking turns (run in its own process by `speed`)."""
    import spacy

    corpus = REGIMES[regime][0]
    texts = _capped([doc.text for doc in regime_docs(regime, spacy.blank("en").vocab)], max_words)
    runners = {system: bc5cdr_ner.pipe_runner(model_path(corpus, system), texts), CEILING: bc5cdr_ner.ceiling_runner(texts)}
    timings = bc5cdr_ner.interleaved_words_per_second(runners, repeats)
    output.write_text(json.dumps({"docs": len(texts), **timings}))


@app.command()
def speed(
    repeats: int = 3,
    max_words: Annotated[int, typer.Option(help="Words per regime at most (whole docs)")] = 40000,
    only: Annotated[str, typer.Option(help="Only the regimes whose name contains one of these (comma-separated)")] = "",
    systems: Annotated[str, typer.Option(help=SYSTEMS_HELP)] = "",
) -> None:
    """words/s of every system on every regime, each system in a fresh
    process beside the ceiling (taking turns, best round each): torch and
    onnxruntime thread pools in one process slow each other down, and a
    user runs one pipeline. Ratios are taken to the same process's ceiling,
    so that a slow spell of the shared machine cancels out."""
    path = out_dir() / "speed.json"
    results: Dict[str, Dict] = json.loads(path.read_text()) if path.exists() else {}
    for regime in REGIMES:
        if only and not any(part in regime for part in only.split(",")):
            continue
        results.setdefault(regime, {})
        for system in _systems(systems):
            out = out_dir() / "speed_one.json"
            subprocess.run([sys.executable, __file__, "--work", str(SETTINGS["work"]), "speed-one", regime, system,
                            str(out), "--repeats", str(repeats), "--max-words", str(max_words)], check=True, cwd=ROOT)
            timing = json.loads(out.read_text())
            results[regime][system] = {**timing[system], "docs": timing["docs"], "ceiling": timing[CEILING]}
            print(regime, system, round(timing[system]["words_per_second"]),
                  "ceiling", round(timing[CEILING]["words_per_second"]), flush=True)
        path.write_text(json.dumps(results, indent=2))


def _rows(speed: Dict, accuracy: Dict) -> Tuple[List[str], Dict]:
    lines = [
        "| regime | docs | words/doc | system | words/s | ceiling words/s (same process) | % of ceiling "
        "| × torch fp32 | F | F − torch fp32 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    table: Dict = {}
    for regime, systems in speed.items():
        share = {name: r["words_per_second"] / r["ceiling"]["words_per_second"] for name, r in systems.items()}
        scores = accuracy.get(regime, {})
        f0 = scores.get("torch fp32", {}).get("ents_f")
        for system, r in systems.items():
            f = scores.get(system, {}).get("ents_f")
            ceiling = r["ceiling"]["words_per_second"]
            # Speed-ups through each process's own ceiling: the machine's
            # speed drifts between processes, the ratio to the ceiling less.
            speedup = share[system] / share["torch fp32"]
            table.setdefault(regime, {})[system] = {
                "words_per_second": r["words_per_second"], "rounds": r["all"], "ceiling_words_per_second": ceiling,
                "share_of_ceiling": share[system], "x_torch_fp32": speedup, **scores.get(system, {}),
            }
            lines.append(
                f"| {regime} | {r['docs']} | {r['words'] / max(r['docs'], 1):.0f} | {system} "
                f"| {r['words_per_second']:,.0f} | {ceiling:,.0f} | {100 * share[system]:.0f}% | {speedup:.2f} "
                f"| {'' if f is None else f'{f:.3f}'} | {'' if f is None or f0 is None else f'{100 * (f - f0):+.2f}'} |"
            )
    return lines, table


@app.command()
def report() -> None:
    """JSON, Markdown table and plot from `accuracy` and `speed`."""
    import onnxruntime
    import torch

    speed_results = json.loads((out_dir() / "speed.json").read_text())
    acc_path = out_dir() / "accuracy.json"
    accuracy_results = json.loads(acc_path.read_text()) if acc_path.exists() else {}
    lines, table = _rows(speed_results, accuracy_results)
    rounds = max(len(r["rounds"]) for systems in table.values() for r in systems.values())
    lines += [
        "",
        "words/s: `nlp.pipe` batch 64, spaCy words, 2 threads; each system in a fresh process beside the ceiling, "
        f"taking turns, best of {rounds} rounds (`onnx_regimes.py speed`; docs: the first docs of the regime up to "
        "`--max-words`); × torch fp32 = the ratio of the shares of each process's own ceiling. F: spaCy's Scorer on the "
        "regime's whole test docs, \"F − torch fp32\" in F points. torch int8: `python -m spacy_llm_ner quantize` "
        "(dynamic_int8_per_channel); torch bf16: `quantize --method bf16` (fp32 weights, bfloat16 autocast at prediction; "
        "this CPU has AMX, without which bf16 falls back to fp32); onnx: `python -m spacy_llm_ner export-onnx` (int8: `--int8`, onnxruntime's "
        "dynamic per-channel int8 of the weight MatMuls). Ceiling: bare fp32 MiniLM forward in torch over 128-piece "
        f"windows, no spaCy (benchmarks/bc5cdr_ner.py). torch {torch.__version__}, onnxruntime {onnxruntime.__version__}.",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "onnx_regimes.json").write_text(json.dumps(table, indent=2))
    text = "\n".join(lines) + "\n"
    (RESULTS / "onnx_regimes.md").write_text(text)
    print(text)
    try:
        plot(table, RESULTS / "onnx_regimes.png")
    except ImportError:
        print("matplotlib missing (pip install -e '.[bench]'): no plot")


def plot(table: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = list(table)
    for regime in regimes:  # the ceiling bar: the median of its processes
        ceilings = sorted(row["ceiling_words_per_second"] for row in table[regime].values())
        table[regime][CEILING] = {"words_per_second": ceilings[len(ceilings) // 2]}
    names = [*SYSTEMS, CEILING]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [table[r][name]["words_per_second"] for r in regimes]
        ax.bar([x + i * width for x in range(len(regimes))], values, width, label=name)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(regimes))])
    ax.set_xticklabels([r.replace(": ", ":\n") for r in regimes], fontsize=8)
    ax.set_ylabel("nlp.pipe words/second (2 CPU threads)")
    ax.set_title("MiniLM transformer_ner by document length: torch and onnxruntime")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# Where a pipeline's time goes, by cumulative time of these functions
# (file suffix, function name); nested stages are subtracted in the table.
STAGES = {
    "spaCy tokenizer": ("spacy/language.py", "make_doc"),
    "HF tokenizer": ("layers/transformer_model.py", "huggingface_tokenize"),
    "backbone forward": ("thinc/shims/pytorch.py", "predict"),
    "bucketing (split, pad, scatter)": ("spacy_llm_ner/ml/bucketing.py", "__call__"),
    "transformer, rest": ("layers/transformer_model.py", "forward"),
    "transformer_ner predict": ("pipeline/transformer_ner.py", "predict"),
    "CRF decoding": ("spacy_llm_ner/ml/decoders.py", "decode"),
    "transformer_ner set_annotations": ("pipeline/transformer_ner.py", "set_annotations"),
    "transformer set_annotations": ("spacy_transformers/pipeline_component.py", "set_annotations"),
}
# A stage's own time: its cumulative time less that of the stages inside it
# (the bucketing wrapper's cumulative time holds the backbone's). "transformer,
# rest" holds spacy-transformers' span getting and alignment (compiled:
# invisible to cProfile).
NESTED = {
    "bucketing (split, pad, scatter)": ("backbone forward",),
    "transformer, rest": ("HF tokenizer", "bucketing (split, pad, scatter)"),
    "transformer_ner predict": ("CRF decoding",),
}


def _stage_seconds(stats) -> Dict[str, float]:
    totals = {stage: 0.0 for stage in STAGES}
    for (filename, _, function), (_, _, _, cumulative, _) in stats.stats.items():
        for stage, (suffix, name) in STAGES.items():
            if function == name and filename.endswith(suffix):
                totals[stage] += cumulative
    return {stage: totals[stage] - sum(totals[n] for n in NESTED.get(stage, ())) for stage in STAGES}


@app.command()
def profile(n_docs: int = 640, regime: str = "short: WNUT-17 tweets") -> None:
    """cProfile of `nlp.pipe` (batch 64) for each system on a regime's first
    docs: seconds per stage, and the top functions by own time. Writes
    benchmarks/results/onnx_regimes_profile.{json,md}."""
    import cProfile
    import io
    import pstats

    import spacy
    import torch

    torch.set_num_threads(2)
    texts = [doc.text for doc in regime_docs(regime, spacy.blank("en").vocab)][:n_docs]
    results: Dict[str, Dict] = {}
    tops: List[str] = []
    for system in SYSTEMS:
        nlp = spacy.load(model_path(REGIMES[regime][0], system))
        list(nlp.pipe(texts[:64]))  # warm-up
        profiler = cProfile.Profile()
        profiler.enable()
        list(nlp.pipe(texts, batch_size=64))
        profiler.disable()
        stats = pstats.Stats(profiler)
        stages = _stage_seconds(stats)
        stages["other"] = stats.total_tt - sum(stages.values())
        results[system] = {"total_seconds": stats.total_tt, "stages": stages}
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(12)
        tops.append(f"### {system}\n\n```\n{buffer.getvalue().strip()}\n```\n")
    lines = [f"| stage ({regime}, first {len(texts)} docs, seconds; share) | " + " | ".join(SYSTEMS) + " |",
             "|---|" + "---|" * len(SYSTEMS)]
    for stage in (*STAGES, "other"):
        cells = [f"{r['stages'][stage]:.2f} ({100 * r['stages'][stage] / r['total_seconds']:.0f}%)" for r in results.values()]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| total (under cProfile) | " + " | ".join(f"{r['total_seconds']:.2f}" for r in results.values()) + " |")
    text = "\n".join(lines) + "\n\nTop functions by own time:\n\n" + "\n".join(tops)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "onnx_regimes_profile.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "onnx_regimes_profile.md").write_text(text)
    print("\n".join(lines))


@app.command("all")
def run_all() -> None:
    """prepare, accuracy, speed, report."""
    prepare()
    accuracy()
    speed()
    report()


if __name__ == "__main__":
    app()
