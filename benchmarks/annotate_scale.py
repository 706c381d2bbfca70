"""Corpus-scale `annotate` (#20): nlp.pipe against the engines on the same work.

A trained NER pipeline (BC5CDR) with a transformer_entity_linker on the CTD
disease KB, its entity vectors precomputed, over BC5CDR abstracts repeated to
at least --words words in --shards .jsonl shards. Every configuration runs in a
fresh process (`one`), while this one samples the RSS and PSS of that process
tree every second: nlp.pipe in one process and with n_process=2; Dask and Ray
with 1 and 2 local workers and on a simulated two-node cluster; Dask at 2
workers with one worker killed (SIGKILL) after the first part.

The linker's head is initialised, not trained (no BC5CDR linking model is
kept): it costs what a trained one does, which is what this measures.

    python benchmarks/annotate_scale.py prepare      # the pipeline and the input
    python benchmarks/annotate_scale.py run          # every configuration (~25 min on 2 cores)
    python benchmarks/annotate_scale.py report       # results/annotate_scale.{json,md}
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, RESULTS, WORK_ROOT, typer_app  # noqa: E402

app = typer_app(__doc__)
# ANNOTATE_SCALE_WORK: another scratch folder (e.g. a tiny model, for engine overheads alone).
WORK = Path(os.environ.get("ANNOTATE_SCALE_WORK") or WORK_ROOT / "annotate_scale")
MODEL, INPUT, RUNS = WORK / "model", WORK / "input", WORK / "runs.json"
NER_MODEL = WORK_ROOT / "bc5cdr" / "ours_crf_lexical" / "model-best"
PART_SIZE = 100
CONFIGS = ["pipe-1", "pipe-2", "dask-1", "dask-2", "dask-2node", "ray-1", "ray-2", "ray-2node", "dask-2-kill"]
# The order `run` takes them in: the engine comparison first.
RUN_ORDER = ["pipe-2", "dask-2", "ray-2", "dask-2-kill", "pipe-1", "dask-1", "dask-2node", "ray-2node", "ray-1"]
LINKER = {
    "top_k": 10, "threshold": 0.0, "cache_size": 100000,
    "model": {"@architectures": "spacy_llm_ner.EntityLinkerModel.v1", "hidden_width": 128, "context_window": 32,
              "dropout": 0.1, "init_scale": 10.0,
              "tok2vec": {"@architectures": "spacy-transformers.TransformerListener.v1", "grad_factor": 1.0,
                          "upstream": "transformer", "pooling": {"@layers": "reduce_mean.v1"}}},
}


def abstracts() -> List[str]:
    """Title + abstract of every BC5CDR document (train, dev, test)."""
    texts: Dict[str, List[str]] = {}
    for split in ("train", "dev", "test"):
        path = DATA.bc5cdr / f"{split}.PubTator.txt"
        DATA.need(path)
        for line in path.read_text(encoding="utf8").splitlines():
            parts = line.split("|", 2)
            if len(parts) == 3 and parts[1] in ("t", "a"):
                texts.setdefault(f"{split}{parts[0]}", []).append(parts[2])
    return [" ".join(t) for t in texts.values()]


@app.command()
def prepare(
    ner_model: Path = typer.Option(NER_MODEL, help="A trained transformer + transformer_ner pipeline"),
    words: int = typer.Option(500_000, help="Input words (whitespace tokens), at least"),
    shards: int = typer.Option(8, help="Input .jsonl shards"),
) -> None:
    """Build the NER + linking pipeline (CTD KB, precomputed entity vectors) and the input."""
    import spacy
    import torch
    from spacy.training import Example

    from spacy_llm_ner.kb.knowledge_base import LinkerKB
    from spacy_llm_ner.kb.loaders import read_records

    torch.set_num_threads(1)
    DATA.need(DATA.ctd)
    nlp = spacy.load(ner_model)
    linker = nlp.add_pipe("transformer_entity_linker", config=LINKER)
    linker.set_kb(LinkerKB.from_records(nlp.vocab, list(read_records(DATA.ctd, fmt="ctd", strip_prefix="MESH:"))))
    texts = abstracts()
    with nlp.select_pipes(disable=["transformer_entity_linker"]):
        sample = [Example(nlp(t), nlp(t)) for t in texts[:4]]
    linker.initialize(lambda: sample, nlp=nlp)
    start = time.perf_counter()
    n = linker.precompute_entities()
    print(f"precomputed {n:,} entity vectors in {time.perf_counter() - start:.0f} s")
    WORK.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(MODEL)
    INPUT.mkdir(parents=True, exist_ok=True)
    docs, total = [], 0
    while total < words:
        text = texts[len(docs) % len(texts)]
        docs.append({"id": f"doc{len(docs)}", "text": text, "copy": len(docs) // len(texts)})
        total += len(text.split())
    for s in range(shards):
        with (INPUT / f"shard{s}.jsonl").open("w", encoding="utf8") as file:
            file.writelines(json.dumps(d) + "\n" for d in docs[s::shards])
    print(f"{len(docs):,} docs, {total:,} words in {shards} shards: {INPUT}")


def _pipe(workers: int) -> Dict[str, Any]:
    import spacy

    from spacy_llm_ner.annotate.worker import set_threads

    start = time.perf_counter()
    set_threads(1)
    nlp = spacy.load(MODEL)
    loaded = time.perf_counter() - start
    texts = [json.loads(line)["text"] for p in sorted(INPUT.glob("*.jsonl")) for line in p.open(encoding="utf8")]
    first, words = 0.0, 0
    for doc in nlp.pipe(texts, batch_size=64, n_process=workers):
        first = first or time.perf_counter() - start
        words += len(doc)
    return {"docs": len(texts), "words": words, "wall_s": time.perf_counter() - start, "startup_s": loaded,
            "first_output_s": first, "worker_pids": []}


def _two_node_dask() -> Any:
    # A scheduler and two `dask worker` processes, each with its own nanny: two hosts' worth.
    import distributed

    cluster = distributed.LocalCluster(n_workers=0, dashboard_address=None)
    dask = Path(sys.executable).parent / "dask"
    procs = [subprocess.Popen([str(dask), "worker", cluster.scheduler_address, "--nworkers", "1", "--nthreads", "1",
                               "--no-dashboard"], stderr=subprocess.DEVNULL) for _ in range(2)]
    distributed.Client(cluster).wait_for_workers(2)
    return cluster, procs


def _engine(name: str) -> Dict[str, Any]:
    from spacy_llm_ner.annotate import annotate

    engine, workers, *rest = name.split("-")
    two_node, kill = "2node" in name, rest == ["kill"]
    out = WORK / "out" / name
    subprocess.run(["rm", "-rf", str(out)], check=True)
    start, address, cleanup = time.perf_counter(), None, []
    if two_node and engine == "dask":
        cluster, procs = _two_node_dask()
        address, cleanup = cluster.scheduler_address, [lambda: [p.terminate() for p in procs], cluster.close]
    elif two_node:
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        cluster.add_node(num_cpus=1)
        address, cleanup = cluster.address, [cluster.shutdown]
    seen: List[str] = []
    killed: List[int] = []

    def on_part(stats: Any) -> None:
        seen.append(stats.worker)
        if kill and not killed:
            killed.append(_kill_other_dask_worker(stats.worker))

    summary = annotate(str(MODEL), str(INPUT), out, engine=engine, workers=2 if two_node else int(workers[0]),
                       address=address, part_size=PART_SIZE, options={"threads": 1}, on_part=on_part)
    wall = time.perf_counter() - start
    for step in cleanup:
        step()
    entries = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    work = sum(e["seconds"] for e in entries)
    return {"docs": summary.docs, "words": summary.words, "wall_s": wall, "verified": summary.verified,
            "errors": summary.errors, "entities": summary.entities, "links": summary.links,
            "first_output_s": summary.first_output_s,
            # Start-up: until the first part was out, less that part's own time.
            "startup_s": summary.first_output_s - entries[0]["seconds"],
            "words_per_worker_s": summary.words / work, "killed": killed,
            "worker_pids": sorted({int(w.rsplit(":", 1)[1]) for w in seen})}


def _kill_other_dask_worker(reporting: str) -> int:
    import distributed

    client = distributed.get_client()
    pids = client.run(os.getpid)
    busy = [a for a, keys in client.processing().items() if keys and not reporting.endswith(f":{pids[a]}")]
    victim = pids[busy[0]] if busy else next(p for a, p in pids.items() if not reporting.endswith(f":{p}"))
    os.kill(victim, signal.SIGKILL)
    return victim


@app.command()
def one(config: str) -> None:
    """Run one configuration (in this process) and print its figures as JSON."""
    result = _pipe(int(config[-1])) if config.startswith("pipe") else _engine(config)
    print("RESULT " + json.dumps(result), flush=True)


def _tree(pid: int) -> List[Any]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _sample(pid: int, peaks: Dict[int, Dict[str, Any]], totals: List[float]) -> None:
    import psutil

    pss_sum = 0.0
    for proc in _tree(pid):
        try:
            mem = proc.memory_full_info()
            entry = peaks.setdefault(proc.pid, {"cmd": " ".join(proc.cmdline())[:120], "rss": 0, "pss": 0})
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        entry["rss"], entry["pss"] = max(entry["rss"], mem.rss), max(entry["pss"], mem.pss)
        pss_sum += mem.pss
    totals.append(pss_sum)


def measure(config: str) -> Dict[str, Any]:
    """Run a configuration in a fresh process, sampling its process tree's memory.

    config (str): One of CONFIGS.
    RETURNS (Dict[str, Any]): Its figures and memory (MB).
    """
    proc = subprocess.Popen([sys.executable, __file__, "one", config], stdout=subprocess.PIPE, text=True)
    peaks: Dict[int, Dict[str, Any]] = {}
    totals: List[float] = []
    while proc.poll() is None:
        _sample(proc.pid, peaks, totals)
        time.sleep(1.0)
    lines = [x for x in proc.stdout.read().splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        return {"config": config, "failed": proc.returncode}
    result = json.loads(lines[-1][len("RESULT "):])
    mb = 1 / 2**20
    workers = [peaks[p] for p in result["worker_pids"] if p in peaks]
    if config.startswith("pipe"):  # the spaCy children, or the process itself
        workers = [v for p, v in peaks.items() if p != proc.pid and "python" in v["cmd"]] or [peaks[proc.pid]]
    result.update({
        "config": config,
        "words_per_s": result["words"] / result["wall_s"],
        "worker_rss_mb": [round(w["rss"] * mb) for w in workers],
        "worker_pss_mb": [round(w["pss"] * mb) for w in workers],
        "peak_total_pss_mb": round(max(totals or [0]) * mb),
    })
    return result


@app.command()
def run(configs: str = typer.Option(",".join(RUN_ORDER), help="Comma-separated configurations")) -> None:
    """Run the configurations, one after another (results kept in work/)."""
    runs = json.loads(RUNS.read_text()) if RUNS.exists() else {}
    for config in configs.split(","):
        print(f"== {config}", flush=True)
        runs[config] = measure(config)
        print(json.dumps(runs[config]), flush=True)
        RUNS.write_text(json.dumps(runs, indent=2))


def _row(r: Dict[str, Any], base: float) -> str:
    if "failed" in r:
        return f"| {r['config']} | failed ({r['failed']}) |||||||"
    rss, pss = r["worker_rss_mb"], r["worker_pss_mb"]
    return (f"| {r['config']} | {r['words_per_s']:,.0f} | {r['words_per_s'] / base:.2f} | {r['startup_s']:.1f} | "
            f"{r['first_output_s']:.1f} | {', '.join(map(str, rss))} | {', '.join(map(str, pss))} | "
            f"{r['peak_total_pss_mb']:,} | {r['wall_s']:.0f} |")


def _pipeline_line() -> str:
    # What was measured, read from the saved pipeline itself.
    meta = json.loads((MODEL / "meta.json").read_text())
    vectors = MODEL / "transformer_entity_linker" / "entity_vectors" / "ids.json"
    n_vectors = len(json.loads(vectors.read_text())) if vectors.exists() else 0
    return f"pipeline {' + '.join(meta['pipeline'])} ({n_vectors:,} precomputed entity vectors)"


@app.command()
def report(note: str = typer.Option("", help="A line to add under the title")) -> None:
    """Write results/annotate_scale.json and .md from the runs."""
    runs = json.loads(RUNS.read_text())
    base = runs.get("pipe-2", {}).get("words_per_s") or 1.0
    first = next(r for r in runs.values() if "failed" not in r)
    lines = [
        "# annotate at scale: nlp.pipe against Dask and Ray (#20)", "", *([note, ""] if note else []),
        f"{first['docs']:,} docs, {first['words']:,} words (spaCy tokens); {_pipeline_line()}; 2 CPU cores shared "
        f"with other work; parts of {PART_SIZE} docs; one torch thread per worker. `x pipe-2`: words/s over "
        "nlp.pipe(n_process=2)'s. Start-up: until the first part was out, less that part's own time (cluster + "
        "model load). RSS/PSS: peak per worker process; total PSS: the whole process tree (driver, "
        "scheduler/raylet, workers).",
        "", "| run | words/s | x pipe-2 | start-up s | first output s | worker RSS MB | worker PSS MB | "
        "total PSS MB | wall s |", "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(runs[c], base) for c in CONFIGS if c in runs]
    if "dask-2-kill" in runs and "dask-2" in runs and "failed" not in runs["dask-2-kill"]:
        k = runs["dask-2-kill"]
        lines += ["", f"Killed worker (SIGKILL after the first part): verified={k['verified']}, "
                      f"{k['docs']:,} docs + {k['errors']} errors, extra time "
                      f"{k['wall_s'] - runs['dask-2']['wall_s']:+.0f} s over dask-2."]
    (RESULTS / "annotate_scale.md").write_text("\n".join(lines) + "\n", encoding="utf8")
    (RESULTS / "annotate_scale.json").write_text(json.dumps(runs, indent=2) + "\n", encoding="utf8")
    print("\n".join(lines))


@app.command("all")
def run_all() -> None:
    """prepare, run, report."""
    prepare(NER_MODEL, 500_000, 8)
    run(",".join(RUN_ORDER))
    report("")


if __name__ == "__main__":
    app()
