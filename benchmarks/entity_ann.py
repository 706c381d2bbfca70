"""Nearest-neighbour search over the entity vectors of the linker
(`precompute-entities`) at 1M and 10M x 384: a float16 table memory-mapped
on disk with an ANN index beside it (`spacy_llm_ner.kb.vector_index`),
faiss-cpu against usearch, against exact search.

    python benchmarks/entity_ann.py --n-entities 50000          # quick check
    python benchmarks/entity_ann.py                             # 1,000,000
    python benchmarks/entity_ann.py --scale 10m --workdir /tmp \
        --out benchmarks/results/entity_ann_10m                 # 10,000,000

The vectors are synthetic, with structure: random vectors have no
neighbourhoods, so ANN figures on them mean nothing. Entities sit in
clusters (one centre per ~50 entities, entity = centre + noise), both drawn
with a decaying spectrum over the 384 dimensions as real encoder outputs
have, L2-normalised; a query is an entity plus noise (a mention's vector near
its entity's). Everything is generated in chunks from fixed seeds straight
into the float16 .npy, so the 10M table (7.7 GB) is never in memory at once.

Every step runs in its own process, one after the other (peak RSS =
`ru_maxrss` of that process; it counts the pages of the mapped table that
the step read, which are shared page cache, not private memory):

- data: the table and the queries; exact: exact top-10 of every query (the
  truth of recall@10), and the exact backend's speed;
- build, per configuration: build time, size on disk, peak RSS; HNSW
  configurations are first built on 20,000 rows and skipped when that
  extrapolates (x (n/20k)^1.33, fitted at 1M) to more than --max-build-min;
- query: load time and RSS added by loading (memory-mapped), then for each
  (breadth, refine) point queries/s (batches of 256, --threads threads) and
  recall@10 against the exact top-10. refine=1 only reorders the ANN's own
  top 10 exactly; refine=r rescores its top 10*r against the mapped table.

VectorIndex's defaults were chosen from this script's results at 1M
(benchmarks/results/entity_ann.md). "auto" prefers usearch: its HNSW has
the best recall@10 at any given queries/s (faiss's HNSW comes close but
loads its graph into memory instead of mapping it; faiss IVF needs nprobe
far above 64, at a few hundred queries/s, to pass 0.9, and PQ even with a
10x refine stays below). Of usearch's storage, i8 with refine 4 against the
float16 table: the f16 graph keeps a second float16 copy of the vectors
(the table is already one), builds 1.7x slower and answers 1.6x slower at
the same breadth, for 2 points of recall@10; refine is what makes i8 worth
it (it adds 5 points at breadth 64, while it adds nothing to f16). Breadth
128: recall@10 0.94 against 0.90 at 64, still thousands of queries/s. faiss
IVF-SQ8 (nprobe 64) is the fallback when usearch is missing.

Writes benchmarks/results/entity_ann.json and .md (--out); the table and
indexes go to a temporary folder (--workdir), removed afterwards.
"""
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, typer_app  # noqa: E402

SCALES = {"100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
DIM, K, BATCH, PILOT = 384, 10, 256, 20_000
# HNSW build time grows faster than n log n once the graph leaves the caches:
# at 1M the builds took 130-200x their time at 20k, i.e. ~n^1.33 (2 CPUs).
BUILD_EXPONENT = 1.33
ENTITIES_PER_CENTRE, ENTITY_NOISE, QUERY_NOISE = 50, 0.6, 0.5
GEN_ROWS = 65_536

# name -> (backend, build params (None: the library's defaults), search grid
# of (breadth, refine)). {nlist} is the library's default for the scale.
CONFIGS: Dict[str, Tuple[str, Optional[Dict[str, Any]], List[Tuple[int, int]]]] = {
    "exact": ("exact", None, [(0, 1)]),
    "faiss-ivf-sq8": ("faiss", None, [(16, 1), (16, 4), (64, 1), (64, 4)]),
    "faiss-ivf-pq48": ("faiss", {"factory": "IVF{nlist},PQ48", "train_rows": 65_536}, [(16, 4), (64, 1), (64, 4), (64, 10)]),
    "faiss-hnsw32-sq8": ("faiss", {"factory": "HNSW32,SQ8", "breadth": 64}, [(64, 1), (64, 4), (128, 4)]),
    "usearch-f16": ("usearch", {"quantization": "f16"}, [(32, 1), (64, 1), (64, 4), (128, 4)]),
    "usearch-i8": ("usearch", None, [(64, 1), (64, 4), (128, 4)]),
}
HNSW = ("faiss-hnsw32-sq8", "usearch-f16", "usearch-i8")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def spectrum(dim: int) -> np.ndarray:
    """Per-dimension scales, decaying like the variance of encoder outputs."""
    return (1.0 + np.arange(dim)) ** -0.5


def entity_chunks(n: int, *, seed: int = 0):
    """The n entity vectors, chunk by chunk (float32, normalised): the same
    for the same n and seed, whatever reads them."""
    scale = spectrum(DIM).astype("float32")
    n_centres = max(1, n // ENTITIES_PER_CENTRE)
    centres = np.random.default_rng([seed, 0]).standard_normal((n_centres, DIM), dtype="float32") * scale
    for i, start in enumerate(range(0, n, GEN_ROWS)):
        rng = np.random.default_rng([seed, 1, i])
        size = min(GEN_ROWS, n - start)
        noise = rng.standard_normal((size, DIM), dtype="float32") * scale * ENTITY_NOISE
        chunk = centres[rng.integers(0, n_centres, size)] + noise
        yield chunk / np.linalg.norm(chunk, axis=1, keepdims=True)


# -- steps (each runs in a subprocess) -------------------------------------------------


def step_data(n: int, n_queries: int, work: Path) -> Dict[str, Any]:
    from spacy_llm_ner.kb.vector_index import write_table

    start = time.perf_counter()
    table = write_table(entity_chunks(n), work / "vectors.npy", n_rows=n, dim=DIM, metric="ip", dtype="float16")
    rng = np.random.default_rng(1)
    rows = np.sort(rng.choice(n, n_queries, replace=False))
    noise = rng.standard_normal((n_queries, DIM), dtype="float32") * spectrum(DIM)
    noise *= QUERY_NOISE / np.linalg.norm(noise, axis=1, keepdims=True)
    queries = np.asarray(table[rows], dtype="float32") + noise
    np.save(work / "queries.npy", queries.astype("float32"))
    np.save(work / "query_rows.npy", rows)
    return {"data_s": round(time.perf_counter() - start, 1), "table_mb": round(table.nbytes / 2**20, 1)}


def _config_params(name: str, n: int) -> Tuple[str, Optional[Dict[str, Any]]]:
    from spacy_llm_ner.kb.vector_index import default_params

    backend, params, _ = CONFIGS[name]
    if params and "{nlist}" in params.get("factory", ""):
        nlist = default_params("faiss", n)["factory"].split(",")[0]
        params = {**params, "factory": params["factory"].replace("IVF{nlist}", nlist)}
    return backend, params


def step_pilot(name: str, work: Path, threads: int) -> Dict[str, Any]:
    from spacy_llm_ner.kb.vector_index import VectorIndex

    table = np.load(work / "vectors.npy", mmap_mode="r")
    rows = min(PILOT, len(table))
    backend, params = _config_params(name, rows)
    sample = np.asarray(table[:rows])
    start = time.perf_counter()
    VectorIndex.build(sample, backend=backend, params=params, threads=threads)
    seconds = time.perf_counter() - start
    n = len(table)
    return {"pilot_rows": rows, "pilot_s": round(seconds, 2),
            "estimated_build_s": round(seconds * (n / rows) ** BUILD_EXPONENT, 1)}


def step_build(name: str, work: Path, threads: int) -> Dict[str, Any]:
    from spacy_llm_ner.kb.vector_index import INDEX_FILES, VectorIndex

    folder = work / name
    folder.mkdir()
    # The one generated table, linked (not copied) into each index's folder:
    # VectorIndex adopts a map of its own folder's vectors.npy as it is.
    os.link(work / "vectors.npy", folder / "vectors.npy")
    table = np.load(folder / "vectors.npy", mmap_mode="r")
    backend, params = _config_params(name, len(table))
    start = time.perf_counter()
    index = VectorIndex.build(table, folder=folder, backend=backend, params=params, threads=threads)
    build_s = time.perf_counter() - start
    index_file = folder / INDEX_FILES.get(backend, "-")
    return {
        "build_s": round(build_s, 1), "params": index.params,
        "index_mb": round(index_file.stat().st_size / 2**20, 1) if index_file.exists() else 0.0,
        "table_mb": round((folder / "vectors.npy").stat().st_size / 2**20, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def step_query(name: str, work: Path, threads: int) -> Dict[str, Any]:
    from spacy_llm_ner.kb.vector_index import VectorIndex

    queries = np.load(work / "queries.npy")
    base = current_rss_mb()
    start = time.perf_counter()
    index = VectorIndex.load(work / name)
    load_ms = (time.perf_counter() - start) * 1000
    result: Dict[str, Any] = {"load_ms": round(load_ms, 1), "rss_added_by_load_mb": round(current_rss_mb() - base, 1)}
    truth_path = work / "truth.npy"
    # One unmeasured batch: the first page faults of the maps.
    index.search(queries[:BATCH], K, threads=threads)
    points = []
    for breadth, refine in CONFIGS[name][2]:
        start = time.perf_counter()
        rows = np.concatenate([
            index.search(queries[i : i + BATCH], K, refine=refine, breadth=breadth or None, threads=threads)[0]
            for i in range(0, len(queries), BATCH)
        ])
        seconds = time.perf_counter() - start
        if name == "exact":
            np.save(truth_path, rows)
            source = np.load(work / "query_rows.npy")
            result["source_entity_at_1"] = round(float(np.mean(rows[:, 0] == source)), 4)
            result["source_entity_at_10"] = round(float(np.mean((rows == source[:, None]).any(axis=1))), 4)
        truth = np.load(truth_path)
        recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(rows.tolist(), truth.tolist())])
        points.append({"breadth": breadth, "refine": refine, "queries_per_s": round(len(queries) / seconds, 1),
                       "recall@10": round(float(recall), 4)})
        print(name, json.dumps(points[-1]), file=sys.stderr, flush=True)
    result["points"] = points
    result["rss_after_queries_mb"] = round(current_rss_mb() - base, 1)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


STEPS = {"data": step_data, "pilot": step_pilot, "build": step_build, "query": step_query}


# -- driver -----------------------------------------------------------------------------


def run_step(args: List[Any], threads: int) -> Dict[str, Any]:
    # BLAS and OpenMP pools sized before the libraries start (exact search is a matmul).
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--step", json.dumps([str(a) for a in args])]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"step {args} failed (rc {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_report(report: Dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf8")
    n = report["n_entities"]
    lines = [
        f"# Entity vectors: ANN search over {n:,} x {DIM} float16 (memory-mapped)",
        "",
        f"Synthetic vectors with cluster structure (one centre per ~{ENTITIES_PER_CENTRE} entities, "
        f"decaying spectrum, L2-normalised), not real encoder outputs; {report['n_queries']:,} queries, each an "
        f"entity plus noise (exact search ranks that entity first for {report['exact_source_at_1']:.1%} of them). "
        f"Recall@10 is against the exact top 10 over the same float16 table. Every step in its own process; "
        f"{report['threads']} threads, batches of {BATCH}; produced by `benchmarks/entity_ann.py` on {report['machine']}.",
        "",
        "| configuration | build (s) | index on disk (MB) | table (MB) | peak RSS, build (MB) | load (ms) | "
        "RSS added by load (MB) | peak RSS, queries (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, res in report["configs"].items():
        if "skipped" in res:
            lines.append(f"| {name} | skipped: {res['skipped']} | | | | | | |")
            continue
        b, q = res["build"], res["query"]
        lines.append(f"| {name} | {b['build_s']:,} | {b['index_mb']:,} | {b['table_mb']:,} | {b['peak_rss_mb']:,} | "
                     f"{q['load_ms']:,} | {q['rss_added_by_load_mb']:,} | {q['peak_rss_mb']:,} |")
    lines += ["", "| configuration | breadth | refine | queries/s | recall@10 |", "|---|---|---|---|---|"]
    for name, res in report["configs"].items():
        for p in res.get("query", {}).get("points", []):
            lines.append(f"| {name} | {p['breadth'] or '-'} | {p['refine']} | {p['queries_per_s']:,} | {p['recall@10']} |")
    lines += [
        "",
        "breadth: nprobe (faiss IVF), efSearch (faiss HNSW), expansion_search (usearch). refine 1: the ANN's top 10, "
        "reordered by exact scores; refine r: its top 10*r rescored exactly against the mapped float16 table. "
        "Build times include reading the table (and checking it is normalised); the RSS of a build counts the "
        "table's pages it read (shared page cache). usearch's index holds its own copy of the vectors "
        "(f16 or i8) besides the graph.",
    ]
    skipped = [f"{k} ({v['skipped']})" for k, v in report["configs"].items() if "skipped" in v]
    if skipped:
        lines += ["", "Skipped: " + "; ".join(skipped) + "."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf8")


app = typer_app(data_callback=False)


@app.command()
def main(
    n_entities: int = typer.Option(1_000_000, help="Synthetic entity vectors (384-d)"),
    scale: Optional[str] = typer.Option(None, help="A size instead of --n-entities: 100k, 1m or 10m"),
    n_queries: int = typer.Option(2048, help="Queries (entity + noise)"),
    threads: int = typer.Option(2, help="Threads for building and searching"),
    only: Optional[List[str]] = typer.Option(None, help=f"Configurations to run (repeatable): {', '.join(CONFIGS)}"),
    max_build_min: float = typer.Option(60.0, help="Skip an HNSW configuration whose estimated build is longer"),
    out: Path = typer.Option(RESULTS / "entity_ann", help="Results path, without .json / .md",
                             show_default="benchmarks/results/entity_ann"),
    workdir: Optional[Path] = typer.Option(None, help="Where the temporary table and indexes go",
                                           show_default="system temp"),
    step: Optional[str] = typer.Option(None, hidden=True, help="One step, as a JSON list (internal)"),
) -> None:
    """Build, load and query each configuration over the same synthetic
    float16 table, each step in its own process."""
    if step:
        name, *rest = json.loads(step)
        args = [int(rest[0]), int(rest[1]), Path(rest[2])] if name == "data" else [rest[0], Path(rest[1]), int(rest[2])]
        print(json.dumps(STEPS[name](*args)))
        return
    if scale is not None:
        if scale.lower() not in SCALES:
            raise typer.BadParameter(f"--scale must be one of {', '.join(SCALES)}, got {scale!r}")
        n_entities = SCALES[scale.lower()]
    names = ["exact"] + [c for c in CONFIGS if c != "exact" and (not only or c in only)]
    unknown = set(only or ()) - set(CONFIGS)
    if unknown:
        raise typer.BadParameter(f"Unknown configuration(s) {', '.join(sorted(unknown))}: use {', '.join(CONFIGS)}")
    work = Path(tempfile.mkdtemp(prefix="entity_ann_", dir=workdir))
    report: Dict[str, Any] = {
        "n_entities": n_entities, "dim": DIM, "n_queries": n_queries, "threads": threads, "configs": {},
        "machine": f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
    }
    try:
        report["data"] = run_step(["data", n_entities, n_queries, work], threads)
        print("data", json.dumps(report["data"]), flush=True)
        for name in names:  # exact first: its top 10 is every other's truth
            res: Dict[str, Any] = {}
            if name in HNSW and n_entities > PILOT:
                res["pilot"] = run_step(["pilot", name, work, threads], threads)
                if res["pilot"]["estimated_build_s"] > max_build_min * 60:
                    res["skipped"] = (f"estimated build {res['pilot']['estimated_build_s'] / 3600:.1f} h "
                                      f"from {PILOT:,} rows in {res['pilot']['pilot_s']} s")
                    print(name, "skipped", res["skipped"], flush=True)
                    report["configs"][name] = res
                    continue
            res["build"] = run_step(["build", name, work, threads], threads)
            print(name, "build", json.dumps(res["build"]), flush=True)
            res["query"] = run_step(["query", name, work, threads], threads)
            print(name, "query", json.dumps(res["query"]), flush=True)
            if name == "exact":
                report["exact_source_at_1"] = res["query"]["source_entity_at_1"]
            report["configs"][name] = res
            shutil.rmtree(work / name)
            write_report(report, out)  # what is done so far, in case a later step fails
        write_report(report, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    app()
