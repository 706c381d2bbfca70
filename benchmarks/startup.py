"""Start-up of the commands that need no model, timed as whole processes
(interpreter start, imports, the work, exit), this checkout against another
one (`--before`, e.g. a worktree of an older commit), and `import spacy`
as the floor of anything that uses spaCy at all.

    python benchmarks/startup.py --before ../old-checkout --runs 7

Each command runs in a fresh process from a scratch folder, the package
taken from PYTHONPATH (this checkout, or --before's), one unmeasured warm-up
each, then the two checkouts in turn (after, before, after, ...) so that a
machine whose load drifts slows both alike; wall seconds from just before the
start to the exit, cpu = user + system of the child. Writes
benchmarks/results/startup.{json,md}.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, typer_app  # noqa: E402

import typer  # noqa: E402

app = typer_app(__doc__, data_callback=False)
ASSETS = ROOT / "assets"


def commands(scratch: Path) -> Dict[str, List[str]]:
    """The commands timed, by name: arguments after `python`.

    scratch (Path): Where they write.
    RETURNS (Dict[str, List[str]]): Name -> arguments.
    """
    cli = ["-m", "spacy_llm_ner"]
    return {
        "import spacy (floor)": ["-c", "import spacy"],
        "--help": [*cli, "--help"],
        "build-kb demo_kb.jsonl": [*cli, "build-kb", str(ASSETS / "demo_kb.jsonl"), str(scratch / "kb")],
        "convert demo_train.jsonl": [*cli, "convert", str(ASSETS / "demo_train.jsonl"), str(scratch / "x.spacy")],
    }


def time_once(args: Sequence[str], *, package_root: Path, cwd: Path) -> Dict[str, float]:
    """Run `python ARGS` once with the package of `package_root`.

    args (Sequence[str]): Arguments after the interpreter.
    package_root (Path): The checkout put first on PYTHONPATH.
    cwd (Path): The working folder (not a checkout: it would shadow it).
    RETURNS (Dict[str, float]): wall and cpu seconds.
    """
    env = {**os.environ, "PYTHONPATH": str(package_root), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({package_root}):\n{result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu}


def describe(root: Path) -> str:
    """A checkout as its commit ("+ changes" when its work tree differs), or
    its path when it is no git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return str(root)
    return commit + (" + changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def summary(runs: List[Dict[str, float]]) -> Dict[str, float]:
    """min and median of the wall and cpu seconds of some runs."""
    return {
        f"{stat}_{key}": round(fn([run[key] for run in runs]), 3)
        for key in ("wall", "cpu")
        for stat, fn in (("min", min), ("median", statistics.median))
    }


@app.command()
def main(
    before: Optional[Path] = typer.Option(
        None, "--before", exists=True, file_okay=False, help="Another checkout to compare with (read, not written)"
    ),
    runs: int = typer.Option(7, "--runs", min=1, help="Measured runs per command and checkout"),
) -> None:
    """Time the commands of this checkout (and of --before's)."""
    roots = {"after": ROOT, **({"before": before.resolve()} if before else {})}
    result: Dict[str, Dict[str, Dict[str, object]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for name, args in commands(scratch).items():
            times: Dict[str, List[Dict[str, float]]] = {label: [] for label in roots}
            for label, root in roots.items():
                time_once(args, package_root=root, cwd=scratch)  # warm-up: the page cache
            for _ in range(runs):
                for label, root in roots.items():
                    times[label].append(time_once(args, package_root=root, cwd=scratch))
            result[name] = {label: {**summary(t), "runs": t} for label, t in times.items()}
            print(name, {label: summary(t) for label, t in times.items()}, flush=True)
    load = os.getloadavg()
    report = {"runs": runs, "python": sys.version.split()[0], "cores": os.cpu_count(), "load_avg": load,
              "before": describe(roots["before"]) if before else None, "after": describe(ROOT), "commands": result}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "startup.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "startup.md").write_text(markdown(report) + "\n")
    print(markdown(report))


def markdown(report: Dict[str, object]) -> str:
    """The table of medians (min in brackets) and the after/before ratio."""
    commands_: Dict[str, Dict[str, Dict[str, float]]] = report["commands"]  # type: ignore[assignment]
    compare = report["before"] is not None
    header = "| command | before s | after s | after / before | cpu s, before -> after |" if compare else "| command | s | cpu s |"
    lines = [header, "|---|---|---|---|---|" if compare else "|---|---|---|"]
    for name, by_label in commands_.items():
        a = by_label["after"]
        cell = f"{a['median_wall']:.2f} ({a['min_wall']:.2f})"
        if compare:
            b = by_label["before"]
            ratio = a["median_wall"] / b["median_wall"]
            lines.append(
                f"| {name} | {b['median_wall']:.2f} ({b['min_wall']:.2f}) | {cell} | {ratio:.2f} "
                f"| {b['median_cpu']:.2f} -> {a['median_cpu']:.2f} |"
            )
        else:
            lines.append(f"| {name} | {cell} | {a['median_cpu']:.2f} |")
    load = ", ".join(f"{x:.1f}" for x in report["load_avg"])  # type: ignore[union-attr]
    lines.append(
        f"\nbefore: {report['before']}, after: {report['after']}. Wall seconds of the whole process, median of {report['runs']} runs (min in brackets), each command "
        f"in a fresh `python` ({report['python']}) from a scratch folder, the checkouts taking turns "
        f"(`benchmarks/startup.py`). {report['cores']} cores, load average {load} at the end: the figures are "
        "for comparing with each other, not absolute. The floor row runs the same command in both columns: its "
        "ratio is the noise."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    app()
