"""Scale of LinkerKB against spaCy's InMemoryLookupKB on the same synthetic
records (deterministic: `kb_synthetic.py`), e.g. 1,000,000 entities with
3,000,000 (entity, name) pairs.

Every measurement runs in its own subprocess, one after the other, so that
peak RSS (`resource.getrusage(...).ru_maxrss`) is that step's alone:

- build: generate the records, build the KB, save it (build s, save s,
  folder size, peak RSS; the record generator is streamed for LinkerKB,
  while InMemoryLookupKB needs all entities of an alias at once, so its
  build groups them in a dict first, as any caller of `add_alias` must);
- query: load the saved KB (load s, RSS after load), then look-ups/s and
  hit rate (the true entity among the candidates) for exact names, names
  changed in case and number (UPPER + "s"), and names with a typo.
  LinkerKB: exact + normalised stages (a fresh process's first pass over
  the queries, which pays the page faults of the mapped files, and a
  second pass), and the full cascade with the n-gram stage's candidates
  retrieved through words (the default), through rare 3-grams at two
  budgets, and (--exact-search) by exact n-gram search. InMemoryLookupKB: its exact
  `get_alias_candidates`, the only look-up it has.

Needs no data (the records are generated) and no model. A single command:
its options follow the script name; it has no --data.

    python benchmarks/kb_scale.py --n-entities 100000     # quick check
    python benchmarks/kb_scale.py                         # 1,000,000, one segment
    python benchmarks/kb_scale.py --segment-size 500000 --workers 2 \
        --out benchmarks/results/kb_scale_2x500k         # 1,000,000 in two segments built at once
    python benchmarks/kb_scale.py --scale 10m --segment-size 1000000 --workers 2 --skip-inmemory \
        --out benchmarks/results/kb_scale_10m            # 10,000,000 (30M names), streamed

--scale names a size (100k, 1m, 3m, 10m) and overrides --n-entities.

Writes benchmarks/results/kb_scale.json and .md (--out); the KBs are built
in a temporary folder (--workdir), removed afterwards.
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, typer_app  # noqa: E402
from kb_synthetic import synthetic_queries, synthetic_records  # noqa: E402


# 3-gram retrieval alone: the defaults before word retrieval, and a cheaper
# setting, to show what speed costs in hit rate.
GRAMS_BUDGET, GRAMS_RESCORE = 100000, 1000
FAST_BUDGET, FAST_RESCORE = 30000, 400
SMALL_BUDGET, SMALL_RESCORE = 10000, 200  # with words: the 3-grams only for what words miss
SCALES = {"100k": 100_000, "1m": 1_000_000, "3m": 3_000_000, "10m": 10_000_000}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


# -- steps (each runs in a subprocess) -------------------------------------------------


def step_build(system: str, n: int, folder: Path, segment_size: int = 0, workers: int = 1) -> Dict[str, Any]:
    import spacy

    vocab = spacy.blank("en").vocab
    start = time.perf_counter()
    if system == "linkerkb" and segment_size > 0:
        # Streamed: each segment is written as it is built (build and save in one).
        from spacy_llm_ner.kb import LinkerKB, write_kb

        write_kb(synthetic_records(n), folder, segment_size=segment_size, workers=workers)
        build_s = time.perf_counter() - start
        kb = LinkerKB.load(folder, vocab)
        built = _built(kb, folder, build_s=build_s, save_s=0.0, n_pairs=sum(s.n_pairs for s in kb._segments),
                       n_aliases=kb.get_size_aliases(), segments=len(kb._segments))
        # Workers are child processes: the build's peak is bounded by this
        # process's peak plus `workers` times the largest child's.
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        built.update(workers=workers, peak_rss_worker_mb=round(children, 1),
                     peak_rss_bound_mb=round(built["peak_rss_mb"] + (workers * children if workers > 1 else 0), 1))
        return built
    if system == "linkerkb":
        from spacy_llm_ner.kb import LinkerKB

        kb = LinkerKB.from_records(vocab, synthetic_records(n))
        n_pairs = sum(s.n_pairs for s in kb._segments)
        n_aliases = kb.get_size_aliases()
    else:
        from spacy.kb import InMemoryLookupKB

        kb = InMemoryLookupKB(vocab, entity_vector_length=1)
        by_alias: Dict[str, List[str]] = defaultdict(list)
        for rec in synthetic_records(n):
            kb.add_entity(entity=rec.id, freq=rec.prior or 0.0, entity_vector=[0.0])
            for alias in rec.all_names():
                by_alias[alias].append(rec.id)
        n_pairs = 0
        for alias, entities in by_alias.items():
            kb.add_alias(alias=alias, entities=entities, probabilities=[1.0 / len(entities)] * len(entities))
            n_pairs += len(entities)
        n_aliases = len(by_alias)
        del by_alias
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    kb.to_disk(folder)
    save_s = time.perf_counter() - start
    return _built(kb, folder, build_s=build_s, save_s=save_s, n_pairs=n_pairs, n_aliases=n_aliases, segments=1)


def _built(kb: Any, folder: Path, *, build_s: float, save_s: float, n_pairs: int, n_aliases: int, segments: int) -> Dict[str, Any]:
    ngram_mb = sum(p.stat().st_size for p in folder.rglob("ng_*.npy")) / 2**20
    word_mb = sum(p.stat().st_size for p in folder.rglob("wd_*.npy")) / 2**20
    return {
        "build_s": round(build_s, 2), "save_s": round(save_s, 2), "size_mb": round(folder_mb(folder), 1),
        "ngram_index_mb": round(ngram_mb, 1), "word_index_mb": round(word_mb, 1), "segments": segments,
        "peak_rss_mb": round(peak_rss_mb(), 1), "n_entities": len(kb), "n_aliases": n_aliases, "n_pairs": n_pairs,
    }


class _Picked:
    """The records `synthetic_queries` will pick (its first draw, replayed
    here), kept from the stream as a list of n would be indexed: ten million
    records in memory at once would need more than the build."""

    def __init__(self, n: int, n_queries: int, seed: int) -> None:
        wanted = set(np.random.default_rng(seed).integers(0, n, size=(3, n_queries)).ravel().tolist())
        self.n = n
        self.kept = {i: rec for i, rec in enumerate(synthetic_records(n)) if i in wanted}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        return self.kept[int(i)]


def step_queries(n: int, n_queries: int, path: Path) -> Dict[str, Any]:
    queries = synthetic_queries(_Picked(n, n_queries, seed=1), n_queries, seed=1)  # type: ignore[arg-type]
    path.write_text(json.dumps(queries), encoding="utf8")
    return {"n_queries_per_kind": n_queries}


def _timed(fn, items: List[str], batch: int) -> tuple:
    start = time.perf_counter()
    out: List[Any] = []
    for i in range(0, len(items), batch):
        out.extend(fn(items[i : i + batch]))
    return out, time.perf_counter() - start


def step_query(system: str, folder: Path, queries_path: Path, n_cascade: int, exact_search: bool) -> Dict[str, Any]:
    from spacy.kb import InMemoryLookupKB
    from spacy.vocab import Vocab

    from spacy_llm_ner.kb import LinkerKB

    queries = json.loads(queries_path.read_text(encoding="utf8"))
    vocab = Vocab()
    base_rss = current_rss_mb()
    start = time.perf_counter()
    if system == "linkerkb":
        kb = LinkerKB.load(folder, vocab)
    else:
        kb = InMemoryLookupKB(vocab, entity_vector_length=1)
        kb.from_disk(folder)
    load_s = time.perf_counter() - start
    result: Dict[str, Any] = {"load_s": round(load_s, 3), "rss_after_load_mb": round(current_rss_mb() - base_rss, 1)}
    lookups = queries["exact"][0] + queries["changed"][0]
    truth = queries["exact"][1] + queries["changed"][1]

    def hit_rate(found: List[List[str]], ids: List[str]) -> float:
        return round(float(np.mean([t in f for f, t in zip(found, ids)])), 4)

    if system == "linkerkb":
        def run(items: List[str], stages) -> tuple:
            cands, seconds = _timed(lambda b: kb.candidates_batch(b, stages=stages, top_k=10), items, 256)
            return [[c.entity_id for c in cs] for cs in cands], seconds

        found, seconds = run(lookups, ("exact",))
        _, again = run(lookups, ("exact",))
        result["exact"] = {
            "lookups_per_s": round(len(lookups) / seconds, 1),
            "lookups_per_s_second_pass": round(len(lookups) / again, 1),
            "hit@10_exact": hit_rate(found[: len(lookups) // 2], truth[: len(lookups) // 2]),
            "hit@10_changed": hit_rate(found[len(lookups) // 2 :], truth[len(lookups) // 2 :]),
        }
        found, seconds = run(lookups, ("exact", "normalized"))
        _, again = run(lookups, ("exact", "normalized"))
        result["exact+normalized"] = {
            "lookups_per_s": round(len(lookups) / seconds, 1),
            "lookups_per_s_second_pass": round(len(lookups) / again, 1),
            "hit@10_exact": hit_rate(found[: len(lookups) // 2], truth[: len(lookups) // 2]),
            "hit@10_changed": hit_rate(found[len(lookups) // 2 :], truth[len(lookups) // 2 :]),
        }
        default_budget, default_rescore = kb.config.ngram_budget, kb.config.rescore
        result["ngram_retrieval"] = kb.config.ngram_retrieval
        runs = [
            ("full_cascade", kb.config.ngram_retrieval, default_budget, default_rescore),
            ("full_cascade_union_small", "words+grams", SMALL_BUDGET, SMALL_RESCORE),
            ("full_cascade_words", "words", default_budget, default_rescore),
            ("full_cascade_grams", "grams", GRAMS_BUDGET, GRAMS_RESCORE),
            ("full_cascade_fast", "grams", FAST_BUDGET, FAST_RESCORE),
        ]
        if exact_search:  # minutes at a million names
            runs.append(("full_cascade_no_pruning", "grams", 0, default_rescore))
        for label, retrieval, budget, rescore in runs:
            kb.config.ngram_retrieval, kb.config.ngram_budget, kb.config.rescore = retrieval, budget, rescore
            mixed = [(k, q, t) for k in ("exact", "changed", "typo") for q, t in zip(*[x[:n_cascade] for x in queries[k]])]
            found, seconds = run([q for _, q, _ in mixed], None)
            result[label] = {"lookups_per_s": round(len(mixed) / seconds, 1)}
            for kind in ("exact", "changed", "typo"):
                idx = [i for i, (k, _, _) in enumerate(mixed) if k == kind]
                result[label][f"hit@10_{kind}"] = hit_rate([found[i] for i in idx], [mixed[i][2] for i in idx])
                result[label][f"hit@1_{kind}"] = hit_rate([found[i][:1] for i in idx], [mixed[i][2] for i in idx])
        kb.config.ngram_budget, kb.config.rescore = default_budget, default_rescore
        result["ngram_budget"], result["rescore"] = default_budget, default_rescore
        result["word_budget"], result["word_rescore"] = kb.config.word_budget, kb.config.word_rescore
    else:
        def lookup(batch: List[str]) -> List[List[str]]:
            return [[c.entity_ for c in kb.get_alias_candidates(q)] for q in batch]

        found, seconds = _timed(lookup, lookups, 256)
        result["exact"] = {
            "lookups_per_s": round(len(lookups) / seconds, 1),
            "hit_exact": hit_rate(found[: len(lookups) // 2], truth[: len(lookups) // 2]),
            "hit_changed": hit_rate(found[len(lookups) // 2 :], truth[len(lookups) // 2 :]),
        }
        typos = queries["typo"]
        found, _ = _timed(lookup, typos[0], 256)
        result["exact"]["hit_typo"] = hit_rate(found, typos[1])
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


# -- driver -----------------------------------------------------------------------------


def run_step(args: List[str]) -> Dict[str, Any]:
    cmd = [sys.executable, __file__, "--step", json.dumps(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"step {args} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _not_run() -> Dict[str, Any]:
    """InMemoryLookupKB's figures when it was skipped (--skip-inmemory): NaN, printed "nan"."""
    nan = float("nan")
    return {
        "build": {"build_s": nan, "save_s": nan, "size_mb": nan, "peak_rss_mb": nan},
        "query": {"load_s": nan, "rss_after_load_mb": nan, "peak_rss_mb": nan,
                  "exact": {"lookups_per_s": nan, "hit_exact": nan, "hit_changed": nan, "hit_typo": nan}},
    }


def _passes(result: Dict[str, Any]) -> str:
    second = result.get("lookups_per_s_second_pass")
    return f"{result['lookups_per_s']:,}" + (f" ({second:,})" if second else "")


def _cascade_rows(q: Dict[str, Any]) -> List[tuple]:
    return [
        ("full_cascade", f"full cascade, default: {q.get('ngram_retrieval', 'grams')} (words {q.get('word_budget', 0):,} / "
                         f"{q.get('word_rescore', 0)}, 3-grams {q['ngram_budget']:,} / {q['rescore']})"),
        ("full_cascade_union_small", f"full cascade, words + 3-grams at {SMALL_BUDGET:,} / {SMALL_RESCORE}"),
        ("full_cascade_words", "full cascade, words alone"),
        ("full_cascade_grams", f"full cascade, 3-grams alone ({GRAMS_BUDGET:,} / {GRAMS_RESCORE}, the defaults before)"),
        ("full_cascade_fast", f"full cascade, 3-grams alone ({FAST_BUDGET:,} / {FAST_RESCORE})"),
        ("full_cascade_no_pruning", "full cascade, exact n-gram search"),
    ]


def write_report(report: Dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf8")
    lk, im = report["linkerkb"], report.get("inmemory") or _not_run()
    n = lk["build"]["n_entities"]
    lines = [
        f"# KB scale: LinkerKB vs spaCy InMemoryLookupKB, {n:,} synthetic entities",
        "",
        f"{lk['build']['n_pairs']:,} (entity, name) pairs, {lk['build']['n_aliases']:,} distinct names; "
        f"same records for both, built and queried in one run, each step in its own process "
        f"(peak RSS = `ru_maxrss` of that process). Produced by `benchmarks/kb_scale.py` "
        f"on {report['machine']}. LinkerKB built in {lk['build'].get('segments', 1)} segment(s)"
        f"{', ' + str(report.get('workers', 1)) + ' at a time in worker processes' if report.get('workers', 1) > 1 else ''}.",
        "",
        "| | LinkerKB | InMemoryLookupKB |",
        "|---|---|---|",
        f"| build (s) | {lk['build']['build_s']:,} | {im['build']['build_s']:,} |",
        f"| save (s) | {lk['build']['save_s']:,} | {im['build']['save_s']:,} |",
        f"| saved size (MB) | {lk['build']['size_mb']:,} (n-gram index: {lk['build']['ngram_index_mb']:,}, "
        f"word index: {lk['build'].get('word_index_mb', 0):,}) | "
        f"{im['build']['size_mb']:,} (no fuzzy index) |",
        f"| peak RSS, build + save (MB) | {lk['build'].get('peak_rss_bound_mb', lk['build']['peak_rss_mb']):,}"
        f"{' (this process + workers x the largest worker)' if lk['build'].get('workers', 1) > 1 else ''} | "
        f"{im['build']['peak_rss_mb']:,} |",
        f"| load (s) | {lk['query']['load_s']:,} (memory-mapped) | {im['query']['load_s']:,} |",
        f"| RSS added by loading (MB) | {lk['query']['rss_after_load_mb']:,} | {im['query']['rss_after_load_mb']:,} |",
        f"| peak RSS, load + queries (MB) | {lk['query']['peak_rss_mb']:,} | {im['query']['peak_rss_mb']:,} |",
        f"| exact look-ups/s (exact names + changed names), first pass (second) | "
        f"{_passes(lk['query']['exact'])} | {im['query']['exact']['lookups_per_s']:,} |",
        f"| exact + normalised look-ups/s, first pass (second) | {_passes(lk['query']['exact+normalized'])} | n/a |",
    ]
    q = lk["query"]
    cascades = [(key, label) for key, label in _cascade_rows(q) if key in q]
    for key, label in cascades:
        lines.append(f"| {label}: look-ups/s | {q[key]['lookups_per_s']:,} | n/a |")
    lines += [
        "",
        "Hit rate (the true entity among the candidates; top 10 for LinkerKB):",
        "",
        "| queries | LinkerKB exact | LinkerKB exact+normalised | "
        + " | ".join(f"{label} @1 / @10" for _, label in cascades) + " | InMemoryLookupKB |",
        "|---|---|---|" + "---|" * len(cascades) + "---|",
    ]
    le, en = q["exact"], q["exact+normalized"]
    ex = im["query"]["exact"]
    for kind, label in [("exact", "exact names"), ("changed", "UPPER-CASED + plural 's'"), ("typo", "one typo")]:
        cells = " | ".join(f"{q[key][f'hit@1_{kind}']} / {q[key][f'hit@10_{kind}']}" for key, _ in cascades)
        lines.append(
            f"| {label} | {le.get(f'hit@10_{kind}', 'n/a')} | {en.get(f'hit@10_{kind}', 'n/a')} | {cells} | "
            f"{ex[f'hit_{kind}']} |"
        )
    lines += [
        "",
        "Hit rates of exact names are below 1 where several entities share the name (acronyms) "
        "and the true one is not ranked within the top 10 or first.",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf8")


app = typer_app(data_callback=False)


@app.command()
def main(
    n_entities: int = typer.Option(1_000_000, help="Synthetic entities (3 names each)"),
    scale: Optional[str] = typer.Option(None, help="A size instead of --n-entities: 100k, 1m, 3m or 10m"),
    n_queries: int = typer.Option(10000, help="Exact look-ups per query kind"),
    n_cascade: int = typer.Option(500, help="Cascade look-ups per query kind"),
    exact_search: bool = typer.Option(False, help="Also the cascade with exact n-gram search (minutes at 1M)"),
    segment_size: int = typer.Option(
        0, help="Build LinkerKB streamed, in segments of this many entities (e.g. 1000000 at --scale 10m); 0: one"
    ),
    workers: int = typer.Option(1, help="With --segment-size: segments built at once in worker processes"),
    skip_inmemory: bool = typer.Option(False, help="LinkerKB only (InMemoryLookupKB at 10M needs more memory than 24 GB)"),
    out: Path = typer.Option(
        RESULTS / "kb_scale", help="Results path, without .json / .md", show_default="benchmarks/results/kb_scale"
    ),
    workdir: Optional[Path] = typer.Option(None, help="Where the temporary KB folder goes", show_default="system temp"),
    step: Optional[str] = typer.Option(None, hidden=True, help="One step, as a JSON list (internal)"),
) -> None:
    """Build, save, load and query LinkerKB and spaCy's InMemoryLookupKB on
    the same synthetic records, each step in its own process."""
    if step:
        name, *rest = json.loads(step)
        if name == "build":
            out = step_build(rest[0], int(rest[1]), Path(rest[2]), int(rest[3]), int(rest[4]))
        elif name == "queries":
            out = step_queries(int(rest[0]), int(rest[1]), Path(rest[2]))
        else:
            out = step_query(rest[0], Path(rest[1]), Path(rest[2]), int(rest[3]), bool(int(rest[4])))
        print(json.dumps(out))
        return
    if scale is not None:
        if scale.lower() not in SCALES:
            raise typer.BadParameter(f"--scale must be one of {', '.join(SCALES)}, got {scale!r}")
        n_entities = SCALES[scale.lower()]
    work = Path(tempfile.mkdtemp(prefix="kb_scale_", dir=workdir))
    try:
        n = n_entities
        report: Dict[str, Any] = {
            "n_entities": n, "machine": f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
            "n_queries_per_kind": n_queries, "n_cascade_per_kind": n_cascade,
            "segment_size": segment_size, "workers": workers,
        }
        queries = work / "queries.json"
        run_step(["queries", str(n), str(n_queries), str(queries)])
        for system in ("linkerkb",) if skip_inmemory else ("linkerkb", "inmemory"):
            folder = work / system
            build = run_step(["build", system, str(n), str(folder), str(segment_size), str(workers)])
            print(system, "build", json.dumps(build), flush=True)
            query = run_step(["query", system, str(folder), str(queries), str(n_cascade), str(int(exact_search))])
            print(system, "query", json.dumps(query), flush=True)
            report[system] = {"build": build, "query": query}
            shutil.rmtree(folder)
        write_report(report, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    app()
